"""The RADIUS dictionary files that ship with ocsd (package data, loaded by ``dictionary``)."""
