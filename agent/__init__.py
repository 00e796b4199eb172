"""The node agent: watches the API, recompiles what events affect and keeps the node's ruleset exact."""
