"""The chaos scenarios, one module each; every one returns :class:`~oec_testkit.chaos.results.Result` rows."""
