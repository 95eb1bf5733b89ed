"""One module per fixture group; see tools/make_official_fixtures.py."""
