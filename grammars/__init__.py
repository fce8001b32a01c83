"""Search-space grammars written in the nas DSL (package data: nas.grammars)."""
