//! Property tests of client-chosen ids: any string of 1 to 255 bytes
//! without NUL is accepted and keeps every byte (through Display and the
//! stored JSON form too); anything else is refused naming the field.

use proptest::prelude::*;

use super::*;
use crate::arbitrary::cases;

/// Strings around the 255-byte limit, in one- to four-byte characters,
/// with control characters and NUL now and then.
fn raw_id() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "(?s).{0,80}",
        2 => "[a-zé€😀\\x00-\\x1f ]{60,140}",
        2 => "[a-z]{250,260}",
        1 => "(?s).{0,40}\\x00.{0,40}",
        1 => Just(String::new()),
    ]
}

fn check<T: fmt::Display + Serialize + serde::de::DeserializeOwned + PartialEq + fmt::Debug>(
    raw: &str,
    parsed: Result<T, DomainError>,
    as_str: impl Fn(&T) -> &str,
    field: &str,
) -> Result<(), TestCaseError> {
    let valid = !raw.is_empty() && raw.len() <= 255 && !raw.contains('\0');
    match parsed {
        Ok(id) => {
            prop_assert!(valid, "accepted {:?}", raw);
            prop_assert_eq!(as_str(&id), raw);
            prop_assert_eq!(id.to_string(), raw);
            let stored = serde_json::to_string(&id).unwrap_or_default();
            prop_assert_eq!(serde_json::from_str::<T>(&stored).ok(), Some(id));
        }
        Err(DomainError::Invalid(errors)) => {
            prop_assert!(!valid, "refused {:?}: {:?}", raw, errors);
            prop_assert!(errors.iter().all(|e| e.field == field), "{:?}", errors);
        }
        Err(other) => prop_assert!(false, "not a validation error: {other:?}"),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn external_ids_keep_every_byte_or_are_refused(raw in raw_id()) {
        check(&raw, ExternalId::parse(raw.clone()), ExternalId::as_str, "external_id")?;
    }

    #[test]
    fn user_ids_keep_every_byte_or_are_refused(raw in raw_id()) {
        check(&raw, UserId::parse(raw.clone()), UserId::as_str, "user_id")?;
    }
}
