"""Tests of growkit/dist/ (the folder is not named dist: pytest skips folders of that name)."""
