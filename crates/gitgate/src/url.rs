//! SSH upstream URLs in the two forms git accepts.

/// A parsed SSH upstream URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UpstreamUrl {
    pub user: Option<String>,
    /// Host name or IP address, without brackets.
    pub host: String,
    pub port: Option<u16>,
    /// Path as written: absolute for `ssh://`, relative to the login directory for the
    /// scp-like form unless it starts with `/`.
    pub path: String,
    /// Whether the URL was written as `ssh://…`.
    pub ssh_scheme: bool,
}

impl UpstreamUrl {
    /// Parses `ssh://[user@]host[:port]/path` or `[user@]host:path`.
    pub fn parse(url: &str) -> Result<UpstreamUrl, String> {
        if url
            .bytes()
            .any(|b| b.is_ascii_control() || b == b' ' || b == b'\\')
        {
            return Err("control characters, spaces and backslashes are not allowed".to_owned());
        }
        if let Some(rest) = url.strip_prefix("ssh://") {
            let (authority, path) = rest.split_at(rest.find('/').ok_or("missing path")?);
            let (user, hostport) = split_user(authority)?;
            let (host, port) = split_port(hostport)?;
            return UpstreamUrl {
                user,
                host,
                port,
                path: path.to_owned(),
                ssh_scheme: true,
            }
            .checked();
        }
        if url.contains("://") {
            return Err("only ssh:// and user@host:path URLs are supported".to_owned());
        }
        let colon = url
            .find(':')
            .ok_or("expected ssh://host/path or user@host:path")?;
        let (authority, path) = (&url[..colon], &url[colon + 1..]);
        if authority.contains('/') {
            return Err("expected ssh://host/path or user@host:path".to_owned());
        }
        let (user, host) = split_user(authority)?;
        UpstreamUrl {
            user,
            host: host.to_owned(),
            port: None,
            path: path.to_owned(),
            ssh_scheme: false,
        }
        .checked()
    }

    fn checked(self) -> Result<UpstreamUrl, String> {
        let host_ok = !self.host.is_empty()
            && !self.host.starts_with('-')
            && self
                .host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._:".contains(&b));
        if !host_ok {
            return Err(format!("invalid host '{}'", self.host.escape_debug()));
        }
        if let Some(user) = &self.user {
            let user_ok = !user.is_empty()
                && !user.starts_with('-')
                && user
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
            if !user_ok {
                return Err(format!("invalid user '{}'", user.escape_debug()));
            }
        }
        if self.path.is_empty() || self.path == "/" || self.path.starts_with('-') {
            return Err("missing or invalid repository path".to_owned());
        }
        if self.port == Some(0) {
            return Err("port 0".to_owned());
        }
        Ok(self)
    }

    /// The host as `ssh` names it in a known-hosts file.
    pub fn known_hosts_name(&self) -> String {
        match self.port {
            Some(port) if port != 22 => format!("[{}]:{port}", self.host),
            _ => self.host.clone(),
        }
    }

    /// Spellings of this URL that git sends to the same repository: the URL as written,
    /// with or without a trailing `.git`, and, when the port is the default and the path
    /// is absolute, the other of the two URL forms.
    pub fn equivalent_forms(&self, written: &str) -> Vec<String> {
        let mut bases = vec![written.to_owned()];
        let user = self
            .user
            .as_ref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default_port = matches!(self.port, None | Some(22));
        if self.ssh_scheme && default_port {
            bases.push(format!("{user}{host}:{}", self.path));
        } else if !self.ssh_scheme && self.path.starts_with('/') {
            bases.push(format!("ssh://{user}{host}{}", self.path));
        }

        let mut forms = Vec::new();
        for base in bases {
            let toggled = match base.strip_suffix(".git") {
                Some(stem) => stem.to_owned(),
                None => format!("{base}.git"),
            };
            for form in [base, toggled] {
                if !forms.contains(&form) {
                    forms.push(form);
                }
            }
        }
        forms
    }
}

fn split_user(authority: &str) -> Result<(Option<String>, &str), String> {
    match authority.rsplit_once('@') {
        Some((user, host)) => Ok((Some(user.to_owned()), host)),
        None => Ok((None, authority)),
    }
}

fn split_port(hostport: &str) -> Result<(String, Option<u16>), String> {
    if let Some(rest) = hostport.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("unclosed '[' in host")?;
        let port = match after {
            "" => None,
            _ => Some(parse_port(
                after.strip_prefix(':').ok_or("junk after ']'")?,
            )?),
        };
        return Ok((host.to_owned(), port));
    }
    match hostport.split_once(':') {
        Some((host, port)) => Ok((host.to_owned(), Some(parse_port(port)?))),
        None => Ok((hostport.to_owned(), None)),
    }
}

fn parse_port(text: &str) -> Result<u16, String> {
    text.parse()
        .map_err(|_| format!("invalid port '{}'", text.escape_debug()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ssh_scheme_with_port() {
        let url = UpstreamUrl::parse("ssh://git@forge.example.org:2222/team/w.git").expect("parse");
        assert_eq!(url.user.as_deref(), Some("git"));
        assert_eq!(url.host, "forge.example.org");
        assert_eq!(url.port, Some(2222));
        assert_eq!(url.path, "/team/w.git");
        assert_eq!(url.known_hosts_name(), "[forge.example.org]:2222");
    }

    #[test]
    fn parses_scp_form() {
        let url = UpstreamUrl::parse("git@forge.example.org:team/w.git").expect("parse");
        assert_eq!(url.host, "forge.example.org");
        assert_eq!(url.port, None);
        assert_eq!(url.path, "team/w.git");
        assert_eq!(url.known_hosts_name(), "forge.example.org");
    }

    #[test]
    fn parses_bracketed_ipv6() {
        let url = UpstreamUrl::parse("ssh://[::1]:2200/srv/r").expect("parse");
        assert_eq!(url.host, "::1");
        assert_eq!(url.known_hosts_name(), "[::1]:2200");
    }

    #[test]
    fn rejects_unsafe_urls() {
        for bad in [
            "ssh://-oProxyCommand=x/path",
            "https://forge.example.org/team/w.git",
            "ssh://host",
            "ssh://host/",
            "host:-x",
            "a b@host:path",
            "ssh://host:99999/p",
            "ssh://-user@host/p",
            "host:path\nx",
            "./local/path",
        ] {
            assert!(UpstreamUrl::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn equivalent_forms_toggle_suffix_and_scheme() {
        let written = "ssh://git@forge.example.org/team/w.git";
        let forms = UpstreamUrl::parse(written)
            .expect("parse")
            .equivalent_forms(written);
        assert_eq!(
            forms,
            vec![
                "ssh://git@forge.example.org/team/w.git",
                "ssh://git@forge.example.org/team/w",
                "git@forge.example.org:/team/w.git",
                "git@forge.example.org:/team/w",
            ]
        );
    }

    #[test]
    fn equivalent_forms_keep_custom_port_scheme_only() {
        let written = "ssh://git@127.0.0.1:2222/srv/w";
        let forms = UpstreamUrl::parse(written)
            .expect("parse")
            .equivalent_forms(written);
        assert_eq!(
            forms,
            vec![
                "ssh://git@127.0.0.1:2222/srv/w",
                "ssh://git@127.0.0.1:2222/srv/w.git"
            ]
        );
    }
}
