"""Search-space descriptions and seed architectures (package data: nas.spaces)."""
