//! Token resolution, the same for every provider: the provisioned environment of the
//! launch merged over the host environment, then each route's token ref looked up.

use std::collections::BTreeMap;

/// A route's token ref that has no value in the provisioned or the host environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "route {host}:{port} injects token {token_ref}, which has no value; export {token_ref} on the host"
)]
pub struct UnresolvedToken {
    pub host: String,
    pub port: u16,
    pub token_ref: String,
}

/// Looks up the value of every token ref that a route injects: first in `provisioned`
/// (values such as a forwarded host login), then with `host_var`. An empty value counts
/// as none.
pub fn resolve_tokens(
    routes: &[bottle_policy::Route],
    provisioned: &BTreeMap<String, String>,
    host_var: &dyn Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, UnresolvedToken> {
    let mut tokens = BTreeMap::new();
    for route in routes {
        let Some(auth) = &route.auth else { continue };
        if tokens.contains_key(&auth.token_ref) {
            continue;
        }
        let value = provisioned
            .get(&auth.token_ref)
            .cloned()
            .or_else(|| host_var(&auth.token_ref))
            .filter(|value| !value.is_empty())
            .ok_or_else(|| UnresolvedToken {
                host: route.host.clone(),
                port: route.port,
                token_ref: auth.token_ref.clone(),
            })?;
        tokens.insert(auth.token_ref.clone(), value);
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(host: &str, token_ref: Option<&str>) -> bottle_policy::Route {
        let mut value = serde_json::json!({ "host": host });
        if let Some(token_ref) = token_ref {
            value["auth"] = serde_json::json!({ "token_ref": token_ref });
        }
        serde_json::from_value(value).expect("route")
    }

    #[test]
    fn provisioned_value_wins_over_host() {
        let routes = [
            route("a.example", Some("T1")),
            route("b.example", Some("T2")),
        ];
        let provisioned = BTreeMap::from([("T1".to_owned(), "from-launch".to_owned())]);
        let host = |name: &str| Some(format!("host-{name}"));
        let tokens = resolve_tokens(&routes, &provisioned, &host).expect("resolve");
        assert_eq!(tokens["T1"], "from-launch");
        assert_eq!(tokens["T2"], "host-T2");
        assert_eq!(tokens.len(), 2);
    }

    #[test]
    fn unresolved_ref_named() {
        let routes = [
            route("open.example", None),
            route("a.example", Some("MISSING_REF")),
        ];
        let provisioned = BTreeMap::from([("OTHER".to_owned(), "x".to_owned())]);
        let err = resolve_tokens(&routes, &provisioned, &|_| None).expect_err("unresolved");
        assert_eq!(err.token_ref, "MISSING_REF");
        assert_eq!(
            err.to_string(),
            "route a.example:443 injects token MISSING_REF, which has no value; export \
             MISSING_REF on the host"
        );
    }

    #[test]
    fn empty_value_is_unresolved() {
        let routes = [route("a.example", Some("T1"))];
        let host = |_: &str| Some(String::new());
        let err = resolve_tokens(&routes, &BTreeMap::new(), &host).expect_err("empty");
        assert_eq!(err.token_ref, "T1");
    }
}
