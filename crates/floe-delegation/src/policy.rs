//! The inline session policy that down-scopes vended credentials to one table.

use serde_json::{Value, json};

use crate::TablePrefix;

/// The policy STS intersects with the role's own: object reads under the table's prefix,
/// listing only with that prefix, and with `write` also puts, deletes and multipart uploads
/// there. Nothing else in the bucket, and nothing in any other bucket.
pub fn session_policy(table: &TablePrefix, write: bool) -> Value {
    let objects = format!("arn:aws:s3:::{}/{}*", table.bucket, table.key_prefix);
    let bucket = format!("arn:aws:s3:::{}", table.bucket);
    let mut statements = vec![
        json!({
            "Sid": "ReadTableObjects",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:GetObjectVersion"],
            "Resource": [objects],
        }),
        json!({
            "Sid": "ListTablePrefix",
            "Effect": "Allow",
            "Action": ["s3:ListBucket"],
            "Resource": [bucket],
            "Condition": {"StringLike": {"s3:prefix": [
                table.key_prefix.clone(),
                format!("{}*", table.key_prefix),
            ]}},
        }),
        json!({
            "Sid": "LocateBucket",
            "Effect": "Allow",
            "Action": ["s3:GetBucketLocation"],
            "Resource": [bucket],
        }),
    ];
    if write {
        statements.push(json!({
            "Sid": "WriteTableObjects",
            "Effect": "Allow",
            "Action": [
                "s3:PutObject",
                "s3:DeleteObject",
                "s3:AbortMultipartUpload",
                "s3:ListMultipartUploadParts",
            ],
            "Resource": [objects],
        }));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> TablePrefix {
        TablePrefix {
            bucket: "lake".into(),
            key_prefix: "wh/sales/orders-1/".into(),
        }
    }

    fn actions(policy: &Value) -> Vec<String> {
        policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|statement| statement["Action"].as_array().unwrap().clone())
            .map(|action| action.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn read_credentials_cannot_write_and_every_resource_is_the_table_or_its_bucket_listing() {
        let policy = session_policy(&table(), false);
        let actions = actions(&policy);
        assert!(actions.contains(&"s3:GetObject".to_string()));
        assert!(
            !actions
                .iter()
                .any(|a| a.starts_with("s3:Put") || a.starts_with("s3:Delete"))
        );
        for statement in policy["Statement"].as_array().unwrap() {
            for resource in statement["Resource"].as_array().unwrap() {
                let resource = resource.as_str().unwrap();
                assert!(
                    resource == "arn:aws:s3:::lake/wh/sales/orders-1/*"
                        || resource == "arn:aws:s3:::lake",
                    "{resource}"
                );
            }
        }
        let listing = &policy["Statement"][1];
        assert_eq!(
            listing["Condition"]["StringLike"]["s3:prefix"],
            json!(["wh/sales/orders-1/", "wh/sales/orders-1/*"])
        );
    }

    #[test]
    fn write_credentials_may_put_and_delete_only_under_the_table() {
        let policy = session_policy(&table(), true);
        let writes = policy["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .find(|statement| statement["Sid"] == "WriteTableObjects")
            .unwrap();
        assert_eq!(
            writes["Resource"],
            json!(["arn:aws:s3:::lake/wh/sales/orders-1/*"])
        );
        assert!(actions(&policy).contains(&"s3:DeleteObject".to_string()));
    }
}
