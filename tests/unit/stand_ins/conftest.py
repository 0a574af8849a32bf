"""Tests with a stand-in for a component: each file's docstring names what it fakes, and the
test of the real thing (tests/e2e/, against the lab's Asterisk and SIPp); each is marked
`stand_in`. They run the real engine over the real, private PostgreSQL of tests/conftest.py;
only the named part is faked. Kept apart from tests/integration/, where nothing is faked."""
