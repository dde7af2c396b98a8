"""What clients of the API see, one module per concern (costs, collection, health).

Naming: a response document is named for what it answers (`TotalCost`, `CostTrends`,
`CollectionHistory`, `CollectorsStatus`, `Health`); an item inside one is a singular noun
(`CostLine`, `ResourceCost`); `...Public` marks the client's view of an object the API also holds
internally under the plain name (`CollectionRun` -> `CollectionRunPublic`, `Period` ->
`PeriodPublic`), and request bodies end in `Request`."""
