use super::*;
use crate::store::memory::MemoryRefreshStore;

fn tokens() -> Tokens {
    let config = TokensConfig {
        access_ttl: Duration::from_secs(60),
        refresh_ttl: Duration::from_secs(3600),
        algorithm: jsonwebtoken::Algorithm::HS256,
        secret: Some(b"0123456789abcdef0123456789abcdef".to_vec()),
    };
    let window = revocation_window(&config);
    Tokens::new(config, Arc::new(MemoryRefreshStore::new(window)))
}

fn demo() -> Identity {
    Identity {
        id: "1".into(),
        username: "demo".into(),
        email: "demo@example.com".into(),
        roles: vec!["patient".into()],
    }
}

#[tokio::test]
async fn issued_access_token_verifies_as_its_user() {
    let t = tokens();
    let issued = t.issue(&demo(), None).await.unwrap().unwrap();
    let access = t.verify_access(&issued.access_token).unwrap();
    assert_eq!(access.identity, demo());
    assert_eq!(issued.token_type, "Bearer");
    assert_eq!(issued.expires_in, 60);
}

#[tokio::test]
async fn a_refresh_token_is_not_an_access_token() {
    let t = tokens();
    let issued = t.issue(&demo(), None).await.unwrap().unwrap();
    assert!(t.verify_access(&issued.refresh_token).is_none());
}

#[tokio::test]
async fn a_token_of_another_type_is_refused() {
    let t = tokens();
    let now = unix(SystemTime::now());
    let claims = serde_json::json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "1", "exp": now + 60, "iat": now, "nbf": now,
        "jti": "x", "typ": "refresh", "sid": "f", "name": "demo", "email": "", "roles": []
    });
    let forged = jsonwebtoken::encode(
        &Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
    )
    .unwrap();
    assert!(t.verify_access(&forged).is_none());
}

fn fresh(spent: Spent) -> Rotation {
    match spent {
        Spent::Fresh(rotation) => rotation,
        Spent::Again { .. } => panic!("expected a first use"),
    }
}

#[tokio::test]
async fn a_use_within_the_grace_gets_the_first_uses_pair_then_reuse_revokes_family() {
    let t = tokens();
    let issued = t.issue(&demo(), None).await.unwrap().unwrap();
    let first = fresh(t.spend(&issued.refresh_token).await.unwrap().unwrap());
    let next = t
        .issue(&demo(), Some(first.record.family.clone()))
        .await
        .unwrap()
        .unwrap();
    t.rotated(&first, &next).await;
    match t.spend(&issued.refresh_token).await.unwrap().unwrap() {
        Spent::Again { issued: again, .. } => assert_eq!(again, next, "the same pair"),
        Spent::Fresh(_) => panic!("second use inside the grace period rotated again"),
    }
    // With no grace at all, the next use is a replay: the family goes.
    let hash = hash_token(&issued.refresh_token);
    assert!(matches!(
        t.store.spend(&hash, Duration::ZERO).await.unwrap(),
        Spend::Reused { .. }
    ));
    t.store.revoke_family(&first.record.family).await.unwrap();
    assert_eq!(
        t.spend(&next.refresh_token).await.unwrap().unwrap_err(),
        RefreshRefusal::Unknown
    );
    assert!(
        t.issue(&demo(), Some(first.record.family.clone()))
            .await
            .unwrap()
            .is_none(),
        "a revoked family takes no new tokens"
    );
}

#[tokio::test]
async fn access_tokens_of_a_revoked_family_are_refused() {
    let t = tokens();
    let issued = t.issue(&demo(), None).await.unwrap().unwrap();
    let other = t.issue(&demo(), None).await.unwrap().unwrap();
    let family = t.verify_access(&issued.access_token).unwrap().family;
    t.revoke_family(&family).await.unwrap();
    assert!(t.verify_access(&issued.access_token).is_none());
    assert!(t.verify_access(&other.access_token).is_some());
    t.revoke_username("demo").await.unwrap();
    assert!(t.verify_access(&other.access_token).is_none());
}

#[test]
fn a_sealed_pair_opens_only_with_the_spent_token_and_its_row() {
    let pair = IssuedTokens {
        access_token: "a".into(),
        refresh_token: "r".into(),
        token_type: "Bearer",
        expires_in: 60,
    };
    let spent = new_token();
    let row = hash_token(&spent);
    let sealed = seal(&successor_key(&spent), &row, &pair).unwrap();
    assert_eq!(open(&successor_key(&spent), &row, &sealed), Some(pair));
    assert!(open(&successor_key(&new_token()), &row, &sealed).is_none());
    assert!(open(&successor_key(&spent), &hash_token("other"), &sealed).is_none());
    let text = String::from_utf8_lossy(&sealed);
    assert!(
        !text.contains("\"access_token\""),
        "sealed, not stored as is"
    );
}

#[tokio::test]
async fn an_unspent_token_can_be_used_again() {
    let t = tokens();
    let issued = t.issue(&demo(), None).await.unwrap().unwrap();
    let spent = fresh(t.spend(&issued.refresh_token).await.unwrap().unwrap());
    t.unspend(&spent).await;
    assert!(matches!(
        t.spend(&issued.refresh_token).await.unwrap().unwrap(),
        Spent::Fresh(_)
    ));
}
