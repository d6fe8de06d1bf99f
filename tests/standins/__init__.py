"""Stand-in provider servers for tests: aiohttp apps serving the recorded fixtures."""
