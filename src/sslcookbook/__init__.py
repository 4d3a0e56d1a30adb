"""sslcookbook."""
