//! Tokens of mailed links in the SQLite file.

use super::*;
use crate::store::{AccountToken, AccountTokenStore, LinkPurpose, TokenHash};

fn token(user: &str, ttl: Duration) -> AccountToken {
    AccountToken {
        user_id: user.into(),
        username: format!("name-{user}"),
        email: format!("{user}@example.com"),
        expires_at: SystemTime::now() + ttl,
    }
}

#[tokio::test]
async fn a_link_survives_a_restart_is_spent_once_and_takes_the_users_others() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let store = SqliteAccountTokens::new(open(&path).await);
    let hour = Duration::from_secs(3600);
    let (a, b, c) = (TokenHash([1; 32]), TokenHash([2; 32]), TokenHash([3; 32]));
    store
        .insert(&a, LinkPurpose::Reset, &token("1", hour))
        .await
        .unwrap();
    store
        .insert(&b, LinkPurpose::Reset, &token("1", hour))
        .await
        .unwrap();
    store
        .insert(&c, LinkPurpose::Reset, &token("2", hour))
        .await
        .unwrap();

    let again = SqliteAccountTokens::new(open(&path).await);
    assert!(
        again.find(&a, LinkPurpose::Verify).await.unwrap().is_none(),
        "own purpose only"
    );
    assert_eq!(
        again
            .find(&a, LinkPurpose::Reset)
            .await
            .unwrap()
            .unwrap()
            .user_id,
        "1"
    );
    let spent = again.spend(&a, LinkPurpose::Reset).await.unwrap().unwrap();
    assert_eq!(spent.email, "1@example.com");
    assert!(
        again.spend(&a, LinkPurpose::Reset).await.unwrap().is_none(),
        "single use"
    );
    assert!(
        again.find(&b, LinkPurpose::Reset).await.unwrap().is_none(),
        "the user's other link went too"
    );
    assert!(
        again.find(&c, LinkPurpose::Reset).await.unwrap().is_some(),
        "another user's stays"
    );
}

#[tokio::test]
async fn an_expired_link_is_neither_found_nor_spent() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteAccountTokens::new(open(&dir.path().join("t.db")).await);
    let hash = TokenHash([9; 32]);
    let mut old = token("1", Duration::ZERO);
    old.expires_at = SystemTime::now() - Duration::from_secs(1);
    store
        .insert(&hash, LinkPurpose::Verify, &old)
        .await
        .unwrap();
    assert!(store
        .find(&hash, LinkPurpose::Verify)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .spend(&hash, LinkPurpose::Verify)
        .await
        .unwrap()
        .is_none());
}
