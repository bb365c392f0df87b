"""Notifications: what a local person is told about mentorship requests, in the app and by mail."""
