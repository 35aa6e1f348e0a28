//! `WWW-Authenticate` challenges (RFC 9110 §11.6.1), parsed without ever failing: a header
//! that cannot be understood gives fewer challenges, never a panic.

/// One challenge: a scheme and its parameters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Challenge {
    /// The scheme, lowercased: `bearer`, `basic`.
    pub scheme: String,
    /// Parameters in order, names lowercased, values unquoted.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// The value of parameter `name` (lowercase).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `realm`.
    pub fn realm(&self) -> Option<&str> {
        self.param("realm")
    }

    /// `service`.
    pub fn service(&self) -> Option<&str> {
        self.param("service")
    }

    /// The scopes of `scope`, split on spaces.
    pub fn scopes(&self) -> Vec<&str> {
        self.param("scope")
            .map(|s| s.split(' ').filter(|x| !x.is_empty()).collect())
            .unwrap_or_default()
    }

    /// `error` (`invalid_token`, `insufficient_scope`).
    pub fn error(&self) -> Option<&str> {
        self.param("error")
    }
}

fn is_tchar(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~/".contains(c)
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.bump();
        }
    }

    fn token(&mut self) -> &str {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.bump();
        }
        &self.s[start..self.pos]
    }

    fn quoted(&mut self) -> String {
        // Called on the opening quote.
        self.bump();
        let mut out = String::new();
        while let Some(c) = self.bump() {
            match c {
                '"' => return out,
                '\\' => {
                    if let Some(n) = self.bump() {
                        out.push(n);
                    }
                }
                c => out.push(c),
            }
        }
        out
    }

    /// Whether what follows is `token BWS "="` (a parameter, not a new scheme).
    fn at_param(&mut self) -> bool {
        let save = self.pos;
        let name_len = self.token().len();
        self.skip_ws();
        let is_param = name_len > 0 && self.peek() == Some('=');
        self.pos = save;
        is_param
    }
}

/// Parses every challenge of a `WWW-Authenticate` value.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut c = Cursor { s: header, pos: 0 };
    let mut out: Vec<Challenge> = Vec::new();
    loop {
        while matches!(c.peek(), Some(' ' | '\t' | ',')) {
            c.bump();
        }
        if c.peek().is_none() {
            break;
        }
        let scheme = c.token().to_ascii_lowercase();
        if scheme.is_empty() {
            // Not a token: skip the character and look for the next challenge.
            c.bump();
            continue;
        }
        let mut challenge = Challenge {
            scheme,
            params: Vec::new(),
        };
        c.skip_ws();
        loop {
            if !c.at_param() {
                // token68 (`Basic abc==`) or garbage: skip to the next comma.
                if challenge.params.is_empty() && c.peek().is_some_and(|ch| ch != ',') {
                    let start = c.pos;
                    while c.peek().is_some_and(|ch| ch != ',') {
                        c.bump();
                    }
                    let t68 = c.s[start..c.pos].trim();
                    if !t68.is_empty() {
                        challenge.params.push((String::new(), t68.to_string()));
                    }
                }
                break;
            }
            let name = c.token().to_ascii_lowercase();
            c.skip_ws();
            c.bump(); // '='
            c.skip_ws();
            let value = if c.peek() == Some('"') {
                c.quoted()
            } else {
                let start = c.pos;
                while c
                    .peek()
                    .is_some_and(|ch| ch != ',' && ch != ' ' && ch != '\t')
                {
                    c.bump();
                }
                c.s[start..c.pos].to_string()
            };
            challenge.params.push((name, value));
            c.skip_ws();
            // Parameters are separated by commas; a comma may also end the challenge.
            while matches!(c.peek(), Some(',' | ' ' | '\t')) {
                c.bump();
            }
            if c.peek().is_none() {
                break;
            }
        }
        out.push(challenge);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_with_all_parameters() {
        let h = r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push repository:c:pull",error="insufficient_scope""#;
        let c = parse_challenges(h);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].realm(), Some("https://auth.example/token"));
        assert_eq!(c[0].service(), Some("registry.example"));
        assert_eq!(
            c[0].scopes(),
            vec!["repository:a/b:pull,push", "repository:c:pull"]
        );
        assert_eq!(c[0].error(), Some("insufficient_scope"));
    }

    #[test]
    fn several_challenges_and_odd_spacing() {
        let h = r#"Basic realm="Registry Realm" , BEARER realm = "x\"y" , service=svc"#;
        let c = parse_challenges(h);
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].realm(), Some("Registry Realm"));
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].realm(), Some("x\"y"));
        assert_eq!(c[1].service(), Some("svc"));
    }

    #[test]
    fn garbage_never_panics() {
        for h in [
            "",
            ",,,",
            "Bearer",
            "Bearer realm",
            "Bearer realm=",
            "Bearer realm=\"unterminated",
            "Basic dXNlcjpwYXNz==",
            "=\"x\"",
            "Bearer \u{e9}=\u{e9}, \u{1F600}",
            "Bearer realm=\"a\\",
            "\"\"\"",
        ] {
            let _ = parse_challenges(h);
        }
        let c = parse_challenges("Basic dXNlcjpwYXNz==, Bearer realm=r");
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[1].realm(), Some("r"));
    }
}
