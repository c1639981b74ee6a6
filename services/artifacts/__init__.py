"""The artifact store: content-addressed blobs, manifests, and the streams between them."""
