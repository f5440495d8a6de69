//! The principal of a TLS client: the certificate's subject DN in RFC 2253 form (what Java's
//! `X500Principal.getName()` gives Kafka), then Kafka's `ssl.principal.mapping.rules`.
//!
//! Invariants: parsing a certificate never panics on arbitrary bytes (x509-parser, checked
//! access); a DN no rule matches maps to itself (DEFAULT), as in Kafka's SslPrincipalMapper.

use regex::Regex;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PrincipalError {
    #[error("invalid ssl.principal.mapping.rules: {0}")]
    BadRules(String),
    #[error("client certificate cannot be parsed")]
    BadCertificate,
}

/// One rule of `ssl.principal.mapping.rules`.
#[derive(Debug, Clone)]
enum Rule {
    Default,
    Replace {
        pattern: Regex,
        replacement: String,
        case: Case,
    },
}

#[derive(Debug, Clone, Copy)]
enum Case {
    Keep,
    Lower,
    Upper,
}

/// Kafka's SslPrincipalMapper: the first rule whose pattern matches the whole DN wins.
#[derive(Debug, Clone)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
}

impl PrincipalMapper {
    /// Parses `RULE:pattern/replacement/[LU]` and `DEFAULT` entries separated by commas (a
    /// comma inside a pattern is fine: a rule runs to its closing `/`).
    pub fn parse(text: &str) -> Result<Self, PrincipalError> {
        let mut rules = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            rest = rest.trim_start_matches([',', ' ', '\n', '\t']);
            if rest.is_empty() {
                break;
            }
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let (pattern, after) = until_slash(after)?;
                let (replacement, after) = until_slash(after)?;
                let (case, after) = match after.chars().next() {
                    Some('L') => (Case::Lower, &after[1..]),
                    Some('U') => (Case::Upper, &after[1..]),
                    _ => (Case::Keep, after),
                };
                let pattern = Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| PrincipalError::BadRules(e.to_string()))?;
                rules.push(Rule::Replace {
                    pattern,
                    // Java's $1 back-references; Rust's regex wants ${1}.
                    replacement: java_replacement(&replacement),
                    case,
                });
                rest = after;
            } else {
                return Err(PrincipalError::BadRules(format!("unexpected {rest:?}")));
            }
            let trimmed = rest.trim_start();
            if !(trimmed.is_empty() || trimmed.starts_with(',')) {
                return Err(PrincipalError::BadRules(format!("unexpected {trimmed:?}")));
            }
            rest = trimmed;
        }
        if rules.is_empty() {
            return Err(PrincipalError::BadRules("no rule".into()));
        }
        Ok(Self { rules })
    }

    /// The principal name for a subject DN.
    pub fn map(&self, dn: &str) -> String {
        for rule in &self.rules {
            match rule {
                Rule::Default => return dn.to_owned(),
                Rule::Replace {
                    pattern,
                    replacement,
                    case,
                } => {
                    if pattern.is_match(dn) {
                        let mapped = pattern.replace(dn, replacement.as_str()).into_owned();
                        return match case {
                            Case::Keep => mapped,
                            Case::Lower => mapped.to_lowercase(),
                            Case::Upper => mapped.to_uppercase(),
                        };
                    }
                }
            }
        }
        dn.to_owned()
    }
}

/// Reads up to an unescaped `/`; returns the text (escapes kept for the regex) and the rest.
fn until_slash(text: &str) -> Result<(String, &str), PrincipalError> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, next)) = chars.next() {
                    if next != '/' {
                        out.push('\\');
                    }
                    out.push(next);
                }
            }
            '/' => return Ok((out, &text[i + 1..])),
            c => out.push(c),
        }
    }
    Err(PrincipalError::BadRules(format!(
        "unterminated rule {text:?}"
    )))
}

fn java_replacement(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' {
            let mut digits = String::new();
            while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                digits.push(*d);
                chars.next();
            }
            if digits.is_empty() {
                out.push_str("$$");
            } else {
                out.push_str(&format!("${{{digits}}}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The subject DN of a DER certificate in RFC 2253 form: RDNs most specific first, joined by
/// ",", attribute types by their short names (Java's default keywords) or dotted OIDs.
pub fn subject_dn(der: &[u8]) -> Result<String, PrincipalError> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|_| PrincipalError::BadCertificate)?;
    let rdns: Vec<String> = cert
        .subject()
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|attr| {
                    let oid = attr.attr_type().to_id_string();
                    let value = attr
                        .as_str()
                        .map(escape_rfc2253)
                        .unwrap_or_else(|_| format!("#{}", hex(attr.attr_value().data)));
                    format!("{}={}", short_name(&oid).unwrap_or(&oid), value)
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    Ok(rdns.into_iter().rev().collect::<Vec<_>>().join(","))
}

/// Java X500Principal's RFC 2253 keywords.
fn short_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

fn escape_rfc2253(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_keeps_the_dn() {
        let mapper = PrincipalMapper::parse("DEFAULT").unwrap();
        assert_eq!(mapper.map("CN=alice,O=acme"), "CN=alice,O=acme");
    }

    #[test]
    fn kafka_rule_examples() {
        // From Kafka's documentation of ssl.principal.mapping.rules.
        let mapper = PrincipalMapper::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,RULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L,RULE:^.*[Cc][Nn]=([a-zA-Z0-9.]*).*$/$1/L,DEFAULT",
        )
        .unwrap();
        assert_eq!(
            mapper.map("CN=kafka-server1,OU=ServiceUsers,O=org,C=US"),
            "kafka-server1"
        );
        assert_eq!(
            mapper.map("CN=Duke,OU=JavaSoft,O=Sun Microsystems,L=Santa Clara,ST=CA,C=US"),
            "duke@javasoft"
        );
        assert_eq!(mapper.map("OU=x,cn=Admin.One,O=y"), "admin.one");
        assert_eq!(mapper.map("O=no-cn"), "O=no-cn");
        let upper = PrincipalMapper::parse("RULE:^CN=([^,]*).*$/$1/U").unwrap();
        assert_eq!(upper.map("CN=bob,O=x"), "BOB");
        assert_eq!(upper.map("O=x"), "O=x", "no match falls back to the DN");
    }

    #[test]
    fn bad_rules_are_rejected() {
        assert!(PrincipalMapper::parse("").is_err());
        assert!(PrincipalMapper::parse("RULE:abc").is_err());
        assert!(PrincipalMapper::parse("RULE:(/x/").is_err());
        assert!(PrincipalMapper::parse("NOPE").is_err());
        assert!(PrincipalMapper::parse("DEFAULT junk").is_err());
    }

    #[test]
    fn escapes_special_characters() {
        assert_eq!(escape_rfc2253("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape_rfc2253(" x "), "\\ x\\ ");
        assert_eq!(escape_rfc2253("#1"), "\\#1");
    }

    #[test]
    fn subject_dn_is_rfc2253_most_specific_first() {
        use rcgen::{CertificateParams, DnType, KeyPair};
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CountryName, "US");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "acme, inc");
        params.distinguished_name.push(DnType::CommonName, "alice");
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let dn = subject_dn(cert.der()).unwrap();
        // rcgen writes CN first in the DER sequence; RFC 2253 (`openssl x509 -nameopt
        // RFC2253`, Java's X500Principal.getName()) prints the sequence last to first.
        assert_eq!(dn, "O=acme\\, inc,C=US,CN=alice");
        let mapper = PrincipalMapper::parse("RULE:^.*,CN=([^,]*)$/$1/").unwrap();
        assert_eq!(mapper.map(&dn), "alice");
    }

    #[test]
    fn garbage_certificate_is_an_error() {
        assert_eq!(subject_dn(b"nope"), Err(PrincipalError::BadCertificate));
    }
}
