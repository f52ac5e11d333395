"""Settings (environment and command line) and the app definition."""
