"""The verification engine: prove access in a customer tenant, explain every failure.

`runner` claims and runs verifications (one tenant, or a fleet with bounded concurrency),
`exchange` obtains the app-only tokens, `probes` makes one cheap call per resource,
`classify` turns Entra's and the resources' answers into diagnosis keys, and `diagnosis`
holds the catalogue an operator (and the customer) reads.
"""
