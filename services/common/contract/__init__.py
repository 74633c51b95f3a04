"""The request rules both sides of the wire enforce.

Control checks a request before it stores or relays it; the spawner checks it
again before it runs anything. Both read the rules from here, so the two can
never disagree: id syntax, languages, paths, package names, size and count
limits, the request-error hierarchy and the egress credential format.
"""
