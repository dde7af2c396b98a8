"""Which days a metrics page reads: the oldest day its lines can be on, from the daily sums."""

from datetime import date

from cost_api.readers.cost_reader import _scan_start

START = date(2026, 1, 1)
# Lines per day, newest first, as LINES_PER_DAY_SQL returns them.
PER_DAY = [(date(2026, 1, 10), 40), (date(2026, 1, 9), 30), (date(2026, 1, 7), 50)]


def test_a_first_page_reads_back_to_the_day_that_holds_its_last_line() -> None:
    assert _scan_start(PER_DAY, 40, None, START) == date(2026, 1, 10)
    assert _scan_start(PER_DAY, 41, None, START) == date(2026, 1, 9)
    assert _scan_start(PER_DAY, 71, None, START) == date(2026, 1, 7)


def test_without_enough_lines_the_whole_period_is_read() -> None:
    assert _scan_start(PER_DAY, 121, None, START) == START
    assert _scan_start([], 1, None, START) == START


def test_after_a_cursor_its_day_counts_for_nothing_and_older_days_must_hold_the_page() -> None:
    # The cursor is on the 10th: however many of its 40 lines are left, the 9th and 7th hold
    # the 60 wanted.
    assert _scan_start(PER_DAY, 30, date(2026, 1, 10), START) == date(2026, 1, 9)
    assert _scan_start(PER_DAY, 60, date(2026, 1, 10), START) == date(2026, 1, 7)
    assert _scan_start(PER_DAY, 81, date(2026, 1, 10), START) == START


def test_the_bound_never_falls_before_the_period() -> None:
    assert _scan_start(PER_DAY, 71, None, date(2026, 1, 8)) == date(2026, 1, 8)
