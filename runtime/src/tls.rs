//! TLS for `wss://`: server and client configurations from PEM files.
