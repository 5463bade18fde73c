// The cases of `widget.rs`, included once per backend module; `Store` and `fixture()` come
// from that module (see `common/mod.rs`).

use docent_domain::ports::{BotStore, MetadataStore, WidgetStore};
use docent_domain::*;

async fn tenant(s: &Store) -> TenantId {
    let id = TenantId::new();
    s.ensure_tenant(id, "test tenant")
        .await
        .expect("ensure_tenant");
    id
}

async fn bot(s: &Store, tenant: TenantId, origins: &[&str]) -> Bot {
    s.create_bot(
        tenant,
        BotDraft {
            name: "widget bot".into(),
            allowed_origins: origins.iter().map(|o| (*o).to_owned()).collect(),
            widget: WidgetSettings {
                sources: WidgetSources::Names,
                color: Some("#0b5fff".into()),
            },
            ..Default::default()
        },
    )
    .await
    .expect("create_bot")
}

fn new_key(text: &str, quota: u32) -> NewWidgetKey {
    NewWidgetKey {
        key: text.into(),
        name: "site".into(),
        daily_quota: quota,
    }
}

fn day(d: u32) -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(2026, 12, d).unwrap()
}

#[tokio::test]
async fn keys_are_created_listed_found_revoked_and_rotated() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let t = tenant(s).await;
    let b = bot(s, t, &["https://site.example"]).await;
    assert_eq!(b.widget.sources, WidgetSources::Names, "settings stored");
    assert_eq!(b.widget.color.as_deref(), Some("#0b5fff"));

    let k = s
        .create_widget_key(t, b.id, new_key("dwk_one", 10))
        .await
        .unwrap();
    assert_eq!((k.bot_id, k.daily_quota, k.messages_today), (b.id, 10, 0));
    assert!(k.revoked_at.is_none());
    let found = s.find_widget_key("dwk_one", day(1)).await.unwrap().unwrap();
    assert_eq!(found.id, k.id);
    assert_eq!(found.tenant_id, t);
    assert!(s.find_widget_key("dwk_nope", day(1)).await.unwrap().is_none());
    assert!(s.origin_has_widget("https://site.example").await.unwrap());
    assert!(!s.origin_has_widget("https://site.exampl").await.unwrap(), "whole origins only");
    assert!(!s.origin_has_widget("https://other.example").await.unwrap());

    // Rotation: the old key is revoked and a new one keeps its name and quota, in one step.
    let rotated = s
        .rotate_widget_key(t, b.id, k.id, "dwk_two".into())
        .await
        .unwrap();
    assert_ne!(rotated.id, k.id);
    assert_eq!((rotated.name.as_str(), rotated.daily_quota), ("site", 10));
    let old = s.find_widget_key("dwk_one", day(1)).await.unwrap().unwrap();
    assert!(old.revoked_at.is_some(), "rotated away");
    let e = s
        .rotate_widget_key(t, b.id, k.id, "dwk_three".into())
        .await
        .unwrap_err();
    assert_eq!(e.code, Code::WidgetKeyNotFound, "a revoked key does not rotate");
    assert!(s.find_widget_key("dwk_three", day(1)).await.unwrap().is_none());

    let list = s.list_widget_keys(t, b.id, day(1)).await.unwrap();
    assert_eq!(
        list.iter().map(|k| k.id).collect::<Vec<_>>(),
        vec![rotated.id, k.id],
        "newest first, revoked ones too"
    );

    // Revocation keeps its first time.
    let revoked = s.revoke_widget_key(t, b.id, rotated.id).await.unwrap();
    let first = revoked.revoked_at.unwrap();
    let again = s.revoke_widget_key(t, b.id, rotated.id).await.unwrap();
    assert_eq!(again.revoked_at, Some(first));
    assert!(
        !s.origin_has_widget("https://site.example").await.unwrap(),
        "no active key left"
    );

    // A bot's delete takes its keys with it.
    s.delete_bot(t, b.id).await.unwrap();
    assert!(s.find_widget_key("dwk_two", day(1)).await.unwrap().is_none());
}

#[tokio::test]
async fn keys_are_tenant_scoped() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let (t1, t2) = (tenant(s).await, tenant(s).await);
    let b1 = bot(s, t1, &[]).await;
    let b2 = bot(s, t2, &[]).await;
    let k = s
        .create_widget_key(t1, b1.id, new_key("dwk_t1", 5))
        .await
        .unwrap();
    let e = s
        .create_widget_key(t2, b1.id, new_key("dwk_x", 5))
        .await
        .unwrap_err();
    assert_eq!(e.code, Code::BotNotFound, "another tenant's bot");
    for res in [
        s.revoke_widget_key(t2, b1.id, k.id).await,
        s.revoke_widget_key(t1, b2.id, k.id).await,
        s.get_widget_key(t2, b1.id, k.id, day(1)).await,
        s.rotate_widget_key(t2, b1.id, k.id, "dwk_y".into()).await,
    ] {
        assert_eq!(res.unwrap_err().code, Code::WidgetKeyNotFound);
    }
    assert!(s.list_widget_keys(t2, b1.id, day(1)).await.unwrap().is_empty());
    assert!(s.get_widget_key(t1, b1.id, k.id, day(1)).await.unwrap().revoked_at.is_none());
    assert_eq!(
        s.take_widget_message(t2, k.id, day(1), 5).await.unwrap(),
        None,
        "another tenant counts nothing"
    );
    s.record_widget_refusal(t2, b1.id, "https://evil.example", "no_origins")
        .await
        .unwrap();
    assert!(s.list_widget_refusals(t1, b1.id).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_daily_quota_is_counted_once_per_message_under_concurrency() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let t = tenant(s).await;
    let b = bot(s, t, &[]).await;
    let k = s
        .create_widget_key(t, b.id, new_key("dwk_q", 7))
        .await
        .unwrap();
    // Twenty at once over the pool's connections.
    let results =
        futures::future::join_all((0..20).map(|_| s.take_widget_message(t, k.id, day(2), 7)))
            .await;
    let mut taken: Vec<u32> = results.into_iter().filter_map(|r| r.unwrap()).collect();
    taken.sort_unstable();
    assert_eq!(taken, (1..=7).collect::<Vec<_>>(), "exactly the quota, each count once");
    let listed = s.get_widget_key(t, b.id, k.id, day(2)).await.unwrap();
    assert_eq!(listed.messages_today, 7);
    // Another day starts again; a lower quota applies at once.
    assert_eq!(s.take_widget_message(t, k.id, day(3), 7).await.unwrap(), Some(1));
    assert_eq!(s.take_widget_message(t, k.id, day(3), 1).await.unwrap(), None);
    assert_eq!(s.get_widget_key(t, b.id, k.id, day(4)).await.unwrap().messages_today, 0);
}

#[tokio::test]
async fn refusals_are_counted_and_bounded() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let t = tenant(s).await;
    let b = bot(s, t, &["https://site.example"]).await;
    for _ in 0..3 {
        s.record_widget_refusal(t, b.id, "https://evil.example", "origin_not_allowed")
            .await
            .unwrap();
    }
    let list = s.list_widget_refusals(t, b.id).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].origin, "https://evil.example");
    assert_eq!((list[0].reason.as_str(), list[0].count), ("origin_not_allowed", 3));
    for i in 0..120 {
        s.record_widget_refusal(t, b.id, &format!("https://x{i}.example"), "origin_not_allowed")
            .await
            .unwrap();
    }
    let list = s.list_widget_refusals(t, b.id).await.unwrap();
    assert!(list.len() <= 100, "bounded: {}", list.len());
    assert!(
        list.iter().any(|r| r.origin == "https://x119.example"),
        "the latest are kept"
    );
}

#[tokio::test]
async fn the_secret_is_made_once_and_visitor_conversations_are_found() {
    let Some(f) = fixture().await else {
        return;
    };
    let s = &f.store;
    let first = s.widget_secret(&[1; 32]).await.unwrap();
    assert_eq!(first, vec![1; 32]);
    assert_eq!(s.widget_secret(&[2; 32]).await.unwrap(), first, "kept");

    let t = tenant(s).await;
    let b = bot(s, t, &[]).await;
    let k = s
        .create_widget_key(t, b.id, new_key("dwk_v", 5))
        .await
        .unwrap();
    let (alice, bob) = (VisitorHash([7; 32]), VisitorHash([8; 32]));
    assert_eq!(
        s.latest_visitor_conversation(t, b.id, alice).await.unwrap(),
        None
    );
    let owner = ConversationOwner::Visitor {
        visitor: alice,
        key: Some(k.id),
    };
    let c1 = s
        .create_conversation(
            t,
            b.id,
            NewConversation {
                title: None,
                owner: Some(owner),
            },
        )
        .await
        .unwrap();
    let c2 = s
        .create_conversation(
            t,
            b.id,
            NewConversation {
                title: None,
                owner: Some(owner),
            },
        )
        .await
        .unwrap();
    // The first one is written to last: it is the latest.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    s.append_message(t, c1.id, NewMessage::user("hello"))
        .await
        .unwrap();
    assert_eq!(
        s.latest_visitor_conversation(t, b.id, alice).await.unwrap(),
        Some(c1.id)
    );
    assert_eq!(s.latest_visitor_conversation(t, b.id, bob).await.unwrap(), None);
    let got = s.get_conversation(t, c2.id).await.unwrap();
    assert_eq!(got.owner, Some(owner), "visitor and key read back");
    assert!(got.from_widget());
    let other = tenant(s).await;
    assert_eq!(
        s.latest_visitor_conversation(other, b.id, alice).await.unwrap(),
        None
    );
}
