//! Extended JSON as TrueNAS speaks it: `{"$date": ms}` for datetimes (whole seconds),
//! `{"$set": [...]}` for sets.

use serde_json::{Value, json};

/// `{"$date": secs * 1000}`: TrueNAS drops sub-second precision.
pub fn date(unix_secs: i64) -> Value {
    json!({ "$date": unix_secs.saturating_mul(1000) })
}

/// `{"$set": items}`.
pub fn set(items: Vec<Value>) -> Value {
    json!({ "$set": items })
}

/// Reads `{"$date": ms}` (exactly one key) as whole Unix seconds.
pub fn as_date(v: &Value) -> Option<i64> {
    let obj = v.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    let ms = obj.get("$date")?;
    ms.as_i64()
        .or_else(|| ms.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
        .map(|ms| ms.div_euclid(1000))
}

/// Reads `{"$set": [...]}` (exactly one key).
pub fn as_set(v: &Value) -> Option<&Vec<Value>> {
    let obj = v.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    obj.get("$set")?.as_array()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_round_trip_drops_subseconds() {
        assert_eq!(date(1_700_000_000), json!({"$date": 1_700_000_000_000i64}));
        assert_eq!(
            as_date(&json!({"$date": 1_700_000_000_999i64})),
            Some(1_700_000_000)
        );
        assert_eq!(as_date(&json!({"$date": 1, "x": 2})), None);
        assert_eq!(as_date(&json!("2024-01-01")), None);
    }

    #[test]
    fn set_shape() {
        assert_eq!(set(vec![json!("A")]), json!({"$set": ["A"]}));
        assert_eq!(as_set(&json!({"$set": [1]})), Some(&vec![json!(1)]));
    }
}
