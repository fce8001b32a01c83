"""Search strategies and runners (nas.searches)."""
