"""TLS decisions without sockets or files: which certificate answers which name.

`sni.CertNames` maps the names of installed certificates to their ids (exact names,
then one-label wildcards); `sni.covers` tells whether a certificate's names cover a
hostname (RFC 6125 §6.4.3). `tickets` is the session-ticket key schedule the edge's
workers share (epochs, a one-way ratchet, OpenSSL's 80-byte key). `owncdn.edge.tls`
builds the SSL contexts around them.
"""
