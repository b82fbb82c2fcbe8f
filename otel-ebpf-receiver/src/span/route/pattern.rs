//! User-declared route patterns (`receiver.routes.patterns`).
//!
//! Stage: span (route derivation), first rule. Input: pattern text from the config and the
//! segments of a request path. Output: whether a pattern matches. Limits: one-segment
//! parameters (`{name}`, `:name`, `*`) and a final rest wildcard (`**`); no regular
//! expressions, no optional segments. Our own code: a few lines of segment matching, where a
//! router crate would bring a framework's syntax the users' applications may not share.

/// One segment of a pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    /// Matches exactly this text.
    Literal(Box<str>),
    /// `{name}`, `:name` or `*`: matches any one non-empty segment.
    One,
    /// `**` (last segment only): matches the rest of the path, zero or more segments.
    Rest,
}

/// A parsed pattern; [`Pattern::route`] is the pattern text as the user wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pattern {
    segs: Vec<Seg>,
    /// The route reported for a match: the pattern as written.
    pub(crate) route: std::sync::Arc<str>,
}

impl Pattern {
    /// Parses a pattern. Errors (one line): not starting with `/`, an empty `{}`/`:`
    /// parameter, an unclosed `{`, `**` not last.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let Some(body) = text.strip_prefix('/') else {
            return Err(format!("{text:?} must start with /"));
        };
        let parts: Vec<&str> = body.split('/').filter(|s| !s.is_empty()).collect();
        let mut segs = Vec::with_capacity(parts.len());
        for (i, p) in parts.iter().enumerate() {
            let seg = match *p {
                "*" => Seg::One,
                "**" if i + 1 == parts.len() => Seg::Rest,
                "**" => return Err(format!("{text:?}: ** must be the last segment")),
                p if p.starts_with('{') => {
                    if !p.ends_with('}') || p.len() < 3 {
                        return Err(format!("{text:?}: bad parameter {p:?} (use {{name}})"));
                    }
                    Seg::One
                }
                p if p.starts_with(':') => {
                    if p.len() < 2 {
                        return Err(format!("{text:?}: empty parameter name after :"));
                    }
                    Seg::One
                }
                p => Seg::Literal(p.into()),
            };
            segs.push(seg);
        }
        Ok(Self {
            segs,
            route: text.into(),
        })
    }

    /// True when the path segments (non-empty, in order) match the pattern.
    pub(crate) fn matches(&self, path: &[&str]) -> bool {
        let mut i = 0;
        for seg in &self.segs {
            match seg {
                Seg::Rest => return true,
                Seg::One if i < path.len() => {}
                Seg::Literal(l) if path.get(i) == Some(&&**l) => {}
                _ => return false,
            }
            i += 1;
        }
        i == path.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, path: &str) -> bool {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        Pattern::parse(p).unwrap().matches(&segs)
    }

    #[test]
    fn segments_params_and_wildcards() {
        assert!(m("/users/{id}", "/users/42"));
        assert!(m("/users/:id", "/users/42"));
        assert!(m("/users/*", "/users/42"));
        assert!(!m("/users/{id}", "/users"));
        assert!(!m("/users/{id}", "/users/42/orders"));
        assert!(m("/users/{id}/orders/{order}", "/users/1/orders/9"));
        assert!(!m("/users/{id}", "/accounts/42"));
        assert!(m("/static/**", "/static/a/b/c.js"));
        assert!(m("/static/**", "/static"));
        assert!(m("/", "/"));
        assert!(!m("/", "/x"));
    }

    #[test]
    fn bad_patterns_are_errors() {
        for bad in ["users/{id}", "/users/{", "/users/{}", "/a/:", "/**/x"] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(&*Pattern::parse("/u/:id").unwrap().route, "/u/:id");
    }
}
