"""The tools' worker side: the HTTP tools (they use requests) and the catalogue loader that puts
every tool of this installation into one registry."""
