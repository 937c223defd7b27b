//! Opaque pagination cursors: base64url of a small JSON object. Clients must not build or
//! read them; anything that does not decode is a `VALIDATION_ERROR`, never a 500.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Serialize, de::DeserializeOwned};

use crate::error::AppError;

pub fn encode<T: Serialize>(position: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(position).unwrap_or_default())
}

pub fn decode<T: DeserializeOwned>(cursor: &str) -> Result<T, AppError> {
    let invalid = || AppError::invalid_field("cursor", "is not a cursor this server issued");
    if cursor.len() > 256 {
        return Err(invalid());
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    serde_json::from_slice(&bytes).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Position {
        s: i64,
    }

    #[test]
    fn cursors_round_trip_and_garbage_is_a_validation_error() {
        let cursor = encode(&Position { s: 42 });
        assert_eq!(decode::<Position>(&cursor).unwrap(), Position { s: 42 });
        for bad in ["", "!!!", "e30", "bm9wZQ", &"A".repeat(300), "eyJzIjoieCJ9"] {
            let err = decode::<Position>(bad).unwrap_err();
            assert_eq!(err.code(), "VALIDATION_ERROR", "{bad}");
        }
    }
}
