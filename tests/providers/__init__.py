"""Tests of the backends in ragcast.providers."""
