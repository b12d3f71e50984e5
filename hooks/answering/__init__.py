"""Answering hook calls and feedback: orders in, cards out, each recorded in the event log."""
