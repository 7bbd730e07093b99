//! The SHA-256 digest that binds a decision to one exact request.

use sha2::{Digest, Sha256};

/// The parts of a request the digest covers.
#[derive(Debug, Clone, Copy)]
pub struct RequestDigest<'a> {
    /// The method, such as `POST`.
    pub method: &'a str,
    /// The authority (`host` or `host:port`).
    pub authority: &'a str,
    /// The canonical path and the query, as forwarded.
    pub path_and_query: &'a str,
    /// Every header, in order, by name and value.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The body bytes as forwarded.
    pub body: &'a [u8],
}

/// Returns the lower-case hex SHA-256 digest of `request`. Every field is length-prefixed,
/// so no two different requests produce the same input to the hash.
pub fn request_digest(request: &RequestDigest<'_>) -> String {
    let mut hasher = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    };
    field(request.method.as_bytes());
    field(request.authority.as_bytes());
    field(request.path_and_query.as_bytes());
    field(&(request.headers.len() as u64).to_be_bytes());
    for (name, value) in request.headers {
        field(name.as_bytes());
        field(value);
    }
    field(request.body);
    hex(&hasher.finalize())
}

/// Returns the lower-case hex SHA-256 digest of `value`, so a value approved once can be
/// recognized later without keeping it.
pub fn value_digest(value: &[u8]) -> String {
    hex(&Sha256::digest(value))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base<'a>(headers: &'a [(&'a str, &'a [u8])], body: &'a [u8]) -> RequestDigest<'a> {
        RequestDigest {
            method: "POST",
            authority: "api.example.com",
            path_and_query: "/v1/items?x=1",
            headers,
            body,
        }
    }

    #[test]
    fn digest_binds_every_part() {
        let headers: &[(&str, &[u8])] = &[("content-type", b"text/plain")];
        let original = request_digest(&base(headers, b"body"));
        assert_eq!(original, request_digest(&base(headers, b"body")), "stable");
        assert_eq!(original.len(), 64);

        let mut other = base(headers, b"body");
        other.method = "PUT";
        assert_ne!(original, request_digest(&other), "method");
        let mut other = base(headers, b"body");
        other.authority = "api.example.com:8443";
        assert_ne!(original, request_digest(&other), "authority");
        let mut other = base(headers, b"body");
        other.path_and_query = "/v1/items?x=2";
        assert_ne!(original, request_digest(&other), "query");
        let changed: &[(&str, &[u8])] = &[("content-type", b"text/html")];
        assert_ne!(original, request_digest(&base(changed, b"body")), "header");
        assert_ne!(original, request_digest(&base(headers, b"bodY")), "body");
    }

    #[test]
    fn digest_fields_do_not_run_together() {
        let none: &[(&str, &[u8])] = &[];
        let mut first = base(none, b"");
        first.method = "PO";
        first.authority = "STapi";
        let mut second = base(none, b"");
        second.method = "POST";
        second.authority = "api";
        assert_ne!(request_digest(&first), request_digest(&second));
    }
}
