"""Tests of growkit/engine/."""
