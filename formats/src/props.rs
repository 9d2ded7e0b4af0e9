//! Property tests: arbitrary bytes at every parser of outside input (names, tokens, the
//! secrets file, the keys file, `meta.json`), and round trips through what we write.

use std::net::IpAddr;

use proptest::prelude::*;

use crate::keys::{KeyEntry, KeyFile, KeyHash, KeyState, Verdict, MAX_SECRET_LEN};
use crate::library::Access;
use crate::name::{check_name, MAX_NAME_LEN};
use crate::token::{sign, Refusal, Secrets, Token};

/// A name from the stream-name alphabet.
fn name() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{1,64}"
}

/// Text that is mostly the interesting characters of a token, so parses often succeed.
fn token_like() -> impl Strategy<Value = String> {
    prop_oneof!["[0-9.i]{0,30}[A-Za-z0-9_.+/= -]{0,40}", any::<String>(),]
}

fn secret() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 16..64)
}

fn entry() -> impl Strategy<Value = (KeyEntry, Vec<u8>)> {
    (
        name(),
        proptest::collection::vec(any::<u8>(), 1..40),
        any::<String>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(name, secret, created, revoked, private)| {
            let state = if revoked {
                KeyState::Revoked
            } else {
                KeyState::Active
            };
            let hash = KeyHash::of(&secret);
            let e = KeyEntry {
                name,
                hash,
                created,
                state,
                private,
                record: false,
            };
            (e, secret)
        })
}

proptest! {
    #[test]
    fn names_are_exactly_the_alphabet(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        let grammar = (1..=MAX_NAME_LEN).contains(&bytes.len())
            && bytes.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_'));
        prop_assert_eq!(check_name(&bytes).is_ok(), grammar);
    }

    #[test]
    fn valid_names_are_accepted(n in name()) {
        prop_assert_eq!(check_name(n.as_bytes()), Ok(()));
    }

    #[test]
    fn an_accepted_token_has_one_spelling(text in token_like()) {
        if let Some(t) = Token::parse(&text) {
            prop_assert!(text.len() <= 64);
            // The expiry is canonical digits: printing it back gives the text before the dot.
            let head = if t.bound { format!("{}.i.", t.expiry) } else { format!("{}.", t.expiry) };
            prop_assert!(text.starts_with(&head), "{text}");
            prop_assert!(!text[head.len()..].contains('.'));
            // Verifying garbage never panics and never passes with a random secret.
            let s = vec![b"0123456789abcdef".to_vec()];
            prop_assert!(t.verify(&s, "/live/a", 0, None).is_err());
        }
    }

    #[test]
    fn signed_tokens_verify_and_any_changed_byte_does_not(
        secret in secret(),
        prefix in "/(live|vod)/[A-Za-z0-9_-]{1,64}",
        expiry in 1u64..,
        addr in proptest::option::of(any::<IpAddr>()),
        at in any::<prop::sample::Index>(),
        to in any::<u8>(),
    ) {
        let secrets = vec![secret.clone()];
        let token = sign(&secret, &prefix, expiry, addr);
        let now = expiry - 1;
        let parsed = Token::parse(&token).expect("a signed token parses");
        prop_assert_eq!((parsed.expiry, parsed.bound), (expiry, addr.is_some()));
        prop_assert_eq!(parsed.verify(&secrets, &prefix, now, addr), Ok(()));
        prop_assert_eq!(parsed.verify(&secrets, &prefix, expiry, addr), Err(Refusal::Expired));

        let mut bytes = token.clone().into_bytes();
        let i = at.index(bytes.len());
        prop_assume!(bytes[i] != to);
        bytes[i] = to;
        let refused = match std::str::from_utf8(&bytes).ok().and_then(Token::parse) {
            None => true,
            Some(t) => t.verify(&secrets, &prefix, now, addr).is_err(),
        };
        prop_assert!(refused, "{token} changed at {i} to {to:#x} still verifies");
    }

    #[test]
    fn secrets_file_round_trips(keys in proptest::collection::vec(secret(), 1..=2)) {
        let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        prop_assert_eq!(Secrets::parse(&Secrets::render(&refs)), Ok(keys));
    }

    #[test]
    fn secrets_file_accepts_only_one_or_two_long_secrets(text in any::<String>()) {
        if let Ok(keys) = Secrets::parse(&text) {
            prop_assert!((1..=2).contains(&keys.len()));
            prop_assert!(keys.iter().all(|k| k.len() >= 16));
        }
    }

    #[test]
    fn hash_text_is_exactly_64_hex_digits(text in prop_oneof![
        any::<String>(),
        // Near misses: 62 to 64 hex digits with one sign, multibyte or non-hex character.
        ("[0-9a-fA-F]{62,64}", any::<prop::sample::Index>(), "[+é g-]")
            .prop_map(|(mut hex, at, bad)| {
                hex.insert_str(at.index(hex.len()), &bad);
                format!("sha256:{hex}")
            }),
        "sha256:[0-9a-fA-F]{64}",
    ]) {
        let grammar = text.strip_prefix("sha256:").is_some_and(|h| {
            h.len() == 64 && h.bytes().all(|c| c.is_ascii_hexdigit())
        });
        prop_assert_eq!(text.parse::<KeyHash>().is_ok(), grammar, "{}", text);
    }

    #[test]
    fn keys_file_of_anything_is_valid_or_refused(text in any::<String>()) {
        if let Ok(f) = KeyFile::parse(&text) {
            for (i, k) in f.keys.iter().enumerate() {
                prop_assert!(check_name(k.name.as_bytes()).is_ok());
                prop_assert!(f.keys[..i].iter().all(|o| o.name != k.name));
            }
        }
    }

    #[test]
    fn keys_file_round_trips_and_verifies(
        entries in proptest::collection::vec(entry(), 0..6),
        other in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut keys: Vec<(KeyEntry, Vec<u8>)> = Vec::new();
        for (e, s) in entries {
            if keys.iter().all(|(k, _)| k.name != e.name) {
                keys.push((e, s));
            }
        }
        let file = KeyFile { keys: keys.iter().map(|(e, _)| e.clone()).collect() };
        prop_assert_eq!(&KeyFile::parse(&file.to_toml()).unwrap(), &file);
        for (e, s) in &keys {
            let want = match e.state {
                KeyState::Active => Verdict::Accepted,
                KeyState::Revoked => Verdict::Revoked,
            };
            prop_assert_eq!(file.verify(e.name.as_bytes(), s), want);
            if other != *s {
                prop_assert_ne!(file.verify(e.name.as_bytes(), &other), Verdict::Accepted);
            }
        }
        // A name that is not in the file, or a secret too long to be ours, never passes.
        let absent = keys.iter().all(|(e, _)| e.name.as_bytes() != other.as_slice());
        if absent {
            prop_assert_eq!(file.verify(&other, b"x"), Verdict::UnknownName);
        }
        if let Some((e, _)) = keys.first() {
            let long = vec![b'a'; MAX_SECRET_LEN + 1];
            prop_assert_ne!(file.verify(e.name.as_bytes(), &long), Verdict::Accepted);
        }
    }

    #[test]
    fn meta_json_of_anything_is_read_or_refused(text in any::<String>()) {
        let _ = Access::parse(&text);
    }

    #[test]
    fn meta_json_privacy_is_read_back(
        private in proptest::option::of(any::<bool>()),
        extra in proptest::collection::btree_map("[a-z]{1,8}", any::<String>(), 0..4),
    ) {
        let mut obj: serde_json::Map<String, serde_json::Value> =
            extra.into_iter().filter(|(k, _)| k != "private").map(|(k, v)| (k, v.into())).collect();
        if let Some(p) = private {
            obj.insert("private".into(), p.into());
        }
        let text = serde_json::to_string_pretty(&obj).unwrap();
        prop_assert_eq!(Access::parse(&text), Ok(Access { private: private.unwrap_or(false) }));
    }
}
