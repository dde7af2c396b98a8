"""Local development stack pieces shared by `make run` and the integration tests."""
