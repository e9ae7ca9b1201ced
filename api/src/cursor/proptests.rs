//! Property tests of list cursors: every cursor decodes to what was
//! encoded (a text holding NUL, which no stored key can, is refused); a
//! cursor of another list, a negative position, or any other string is a
//! 400, never a panic; page sizes outside their range are 400s.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use proptest::prelude::*;

use super::*;
use crate::arbitrary::{cases, status_of, text};

fn kind() -> impl Strategy<Value = String> {
    "[a-z_-]{1,16}"
}

fn uuid() -> impl Strategy<Value = uuid::Uuid> {
    any::<u128>().prop_map(uuid::Uuid::from_u128)
}

fn refused<T: std::fmt::Debug>(result: Result<T, ApiError>) -> Result<(), TestCaseError> {
    match result {
        Err(e) => {
            prop_assert_eq!(status_of(e), 400);
            Ok(())
        }
        Ok(v) => Err(TestCaseError::fail(format!("accepted as {v:?}"))),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn a_cursor_decodes_to_what_was_encoded(kind in kind(), key in 0..=i64::MAX, id in uuid(), pair_key in any::<i64>(), tail in text()) {
        prop_assert_eq!(decode(&kind, Some(&encode(&kind, key))).ok(), Some(key));
        prop_assert_eq!(decode_id(&kind, Some(&encode_id(&kind, id))).ok(), Some(Some(id)));
        let keyed = encode_keyed(&kind, pair_key, &tail);
        if tail.contains('\0') {
            // No stored key holds a NUL (PostgreSQL's text cannot).
            refused(decode_keyed(&kind, Some(&keyed)))?;
        } else {
            prop_assert_eq!(decode_keyed(&kind, Some(&keyed)).ok(), Some(Some((pair_key, tail))));
        }
    }

    #[test]
    fn a_cursor_of_another_list_is_a_400(a in kind(), b in kind(), key in 0..=i64::MAX, id in uuid()) {
        prop_assume!(a != b);
        refused(decode(&b, Some(&encode(&a, key))))?;
        refused(decode_id(&b, Some(&encode_id(&a, id))))?;
        refused(decode_keyed(&b, Some(&encode_keyed(&a, key, &id.to_string()))))?;
    }

    #[test]
    fn a_negative_position_is_a_400(kind in kind(), key in i64::MIN..0) {
        refused(decode(&kind, Some(&encode(&kind, key))))?;
    }

    #[test]
    fn any_string_is_a_position_or_a_400(kind in kind(), raw in text()) {
        for result in [
            decode(&kind, Some(&raw)).map(|k| k.to_string()),
            decode_id(&kind, Some(&raw)).map(|k| format!("{k:?}")),
            decode_keyed(&kind, Some(&raw)).map(|k| format!("{k:?}")),
        ] {
            if let Err(e) = result {
                prop_assert_eq!(status_of(e), 400);
            }
        }
        match decode(&kind, Some(&raw)) {
            Ok(key) if !raw.is_empty() => {
                // Only a well-formed cursor of this list gets here.
                let text = URL_SAFE_NO_PAD.decode(&raw).ok().and_then(|b| String::from_utf8(b).ok());
                let found = text.as_deref().and_then(|t| t.strip_prefix(&format!("{kind}:")).map(str::to_owned));
                prop_assert_eq!(found.and_then(|k| k.parse::<i64>().ok()), Some(key));
                prop_assert!(key >= 0);
            }
            Ok(key) => prop_assert_eq!(key, 0, "an empty cursor is the start"),
            Err(_) => {}
        }
    }

    #[test]
    fn any_text_behind_valid_base64_is_a_position_or_a_400(kind in kind(), inner in text(), prefixed in any::<bool>()) {
        let inner = if prefixed { format!("{kind}:{inner}") } else { inner };
        let raw = URL_SAFE_NO_PAD.encode(&inner);
        match decode(&kind, Some(&raw)) {
            Ok(key) if raw.is_empty() => prop_assert_eq!(key, 0, "an empty cursor is the start"),
            Ok(key) => {
                let digits = inner.strip_prefix(&format!("{kind}:")).unwrap_or_default();
                prop_assert_eq!(digits.parse::<i64>().ok(), Some(key));
            }
            Err(e) => prop_assert_eq!(status_of(e), 400),
        }
        if let Err(e) = decode_keyed(&kind, Some(&raw)) {
            prop_assert_eq!(status_of(e), 400);
        }
    }

    #[test]
    fn a_page_size_is_in_range_or_a_400(raw in prop::option::of(any::<i64>()), default in 1i64..100, max in 1i64..2000) {
        match limit(raw, default, max) {
            Ok(n) => {
                prop_assert_eq!(n, raw.unwrap_or(default));
                prop_assert!((1..=max).contains(&n));
            }
            Err(e) => {
                prop_assert_eq!(status_of(e), 400);
                prop_assert!(!(1..=max).contains(&raw.unwrap_or(default)));
            }
        }
    }
}
