//! Redaction of well-known secrets in command lines and URL query strings.
//!
//! Stage: inside **enrich** (the process resource's `process.command_line`) and **span**
//! (`url.query`, `url.full`). Input: the arguments of a command line, or a query string.
//! Output: the same text with the *values* of secret-looking keys replaced by
//! [`REDACTED`]; keys, order and everything else are kept. Pure functions, no IO.
//!
//! Rules (a key is compared lower-cased, with leading `-` removed):
//! - a key *containing* one of [`SECRET_WORDS`] (`password`, `token`, `secret`, `apikey`, …)
//!   or *equal to* one of [`SECRET_KEYS`] (`pwd`, `pass`, `key`, `auth`, …) is secret;
//! - `--key=value` and `KEY=value` arguments: the value is redacted;
//! - `--key value` (option then a separate argument): the next argument is redacted, unless
//!   it starts with `-` (the option took no value);
//! - a URL with a password (`scheme://user:password@host`) anywhere in an argument: the
//!   password is redacted; its query string follows the query rule;
//! - a query string `a=1&token=x`: values of secret keys are redacted, and the
//!   case-sensitive keys of the OpenTelemetry semantic conventions
//!   ([`otel_ebpf_semconv::value::SENSITIVE_QUERY_KEYS`]: `sig`, `X-Amz-Signature`, …).
//!
//! Limits: a secret passed in a form none of these rules names (`mysql -pSECRET`, a
//! positional password, a secret inside a JSON argument) is not found. The full command line
//! is exported only when the configuration asks for it (see the README's "What is exported").

use otel_ebpf_semconv::value::SENSITIVE_QUERY_KEYS;

/// What a secret value is replaced with (the OpenTelemetry semantic conventions' choice for
/// `url.query`).
pub const REDACTED: &str = otel_ebpf_semconv::value::REDACTED;

/// A key containing one of these (lower case) is secret.
pub const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "access_key",
    "access-key",
    "accesskey",
    "private_key",
    "private-key",
    "credential",
    "signature",
];

/// A key equal to one of these (lower case) is secret.
pub const SECRET_KEYS: &[&str] = &[
    "pwd",
    "pass",
    "key",
    "auth",
    "authorization",
    "session",
    "sessionid",
    "session_id",
    "cookie",
];

/// Whether `key` names a secret (see the module rules).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.trim_start_matches('-').to_ascii_lowercase();
    !k.is_empty()
        && (SECRET_KEYS.contains(&k.as_str()) || SECRET_WORDS.iter().any(|w| k.contains(w)))
}

/// A query string (without `?`) with the values of secret keys replaced.
pub fn query(q: &str) -> String {
    let redact = |pair: &str| match pair.split_once('=') {
        Some((k, _)) if SENSITIVE_QUERY_KEYS.contains(&k) || is_secret_key(k) => {
            format!("{k}={REDACTED}")
        }
        _ => pair.to_string(),
    };
    q.split('&').map(redact).collect::<Vec<_>>().join("&")
}

/// Command-line arguments with secret values replaced (one output per input argument).
pub fn command_line<S: AsRef<str>>(args: &[S]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut value_is_secret = false;
    for arg in args {
        let arg = arg.as_ref();
        if value_is_secret && !arg.starts_with('-') {
            out.push(REDACTED.to_string());
            value_is_secret = false;
            continue;
        }
        value_is_secret = false;
        if let Some((k, _)) = arg.split_once('=')
            && !k.contains(['/', ':', '?', '&', ' '])
            && is_secret_key(k)
        {
            out.push(format!("{k}={REDACTED}"));
            continue;
        }
        if arg.starts_with('-') && !arg.contains('=') && is_secret_key(arg) {
            value_is_secret = true;
            out.push(arg.to_string());
            continue;
        }
        out.push(urls(arg));
    }
    out
}

/// Redacts URL passwords (`://user:password@`) and query strings inside `arg`.
fn urls(arg: &str) -> String {
    let mut s = arg.to_string();
    // Passwords in every `scheme://user:password@` of the argument.
    let mut from = 0;
    while let Some(i) = s[from..].find("://") {
        let start = from + i + 3;
        let end = s[start..]
            .find(['/', '?', '#', ' '])
            .map_or(s.len(), |e| start + e);
        if let Some(at) = s[start..end].rfind('@')
            && let Some(colon) = s[start..start + at].find(':')
        {
            let (p0, p1) = (start + colon + 1, start + at);
            if p1 > p0 {
                s.replace_range(p0..p1, REDACTED);
            }
        }
        from = start;
    }
    // A query string: after the first `?` up to `#` or a space.
    if let Some(q) = s.find('?') {
        let end = s[q + 1..].find(['#', ' ']).map_or(s.len(), |e| q + 1 + e);
        let red = query(&s[q + 1..end]);
        s.replace_range(q + 1..end, &red);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn red(line: &str) -> String {
        command_line(&line.split(' ').collect::<Vec<_>>()).join(" ")
    }

    #[test]
    fn option_values_of_secret_keys_are_redacted() {
        assert_eq!(
            red("app --password=hunter2 --user=bob --api-key abc -v --token=t --port 80"),
            "app --password=REDACTED --user=bob --api-key REDACTED -v --token=REDACTED --port 80"
        );
        assert_eq!(
            red("psql -W --db-password --host h"),
            "psql -W --db-password --host h"
        );
        assert_eq!(
            red("env DB_PASSWORD=s3cr3t AWS_SECRET_ACCESS_KEY=x HOME=/root run"),
            "env DB_PASSWORD=REDACTED AWS_SECRET_ACCESS_KEY=REDACTED HOME=/root run"
        );
        assert_eq!(
            red("java -Dkey=v -Dsession=s -jar a.jar"),
            "java -Dkey=v -Dsession=s -jar a.jar"
        );
        assert_eq!(
            red("app --key=k --pwd p"),
            "app --key=REDACTED --pwd REDACTED"
        );
    }

    #[test]
    fn url_passwords_and_query_secrets_are_redacted() {
        assert_eq!(
            red("curl https://bob:pa55@example.com/x?a=1&access_token=zzz&b=2"),
            "curl https://bob:REDACTED@example.com/x?a=1&access_token=REDACTED&b=2"
        );
        assert_eq!(
            red("redis-cli -u redis://:pw@h:6379/0"),
            "redis-cli -u redis://:REDACTED@h:6379/0"
        );
        assert_eq!(red("curl http://h/p?q=1"), "curl http://h/p?q=1");
        assert_eq!(red("ssh git@github.com"), "ssh git@github.com");
    }

    #[test]
    fn query_keeps_keys_and_other_values() {
        assert_eq!(
            query("a=1&sig=s&X-Amz-Signature=x&SIG=keep&password=p&Token=t&flag"),
            "a=1&sig=REDACTED&X-Amz-Signature=REDACTED&SIG=keep&password=REDACTED&Token=REDACTED&flag"
        );
        assert_eq!(query(""), "");
    }

    #[test]
    fn keys_are_matched_by_word_or_whole() {
        for k in [
            "--password",
            "PASSWD",
            "client_secret",
            "x-auth-token",
            "apikey",
            "pwd",
        ] {
            assert!(is_secret_key(k), "{k}");
        }
        for k in ["--port", "keyboard", "monkey", "user", "-", "", "path"] {
            assert!(!is_secret_key(k), "{k}");
        }
    }
}
