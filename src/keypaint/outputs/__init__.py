"""Saved pictures that keep their story: A1111 infotext, keypaint JSON metadata, numbered PNG files."""
