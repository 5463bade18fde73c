//! A `SharedApiKey` replaced while clients run (secret rotation on SIGHUP): the next request of
//! the chat client and of the embedder sends the new key, and a refused key is never echoed.

use docent_domain::Code;
use docent_fake_openai::{CHAT_MODEL, EMBED_MODEL, FakeConfig, FakeServer};
use docent_llm::{
    ChatConfig, ChatMessage, ChatModel, ChatRequest, Embedder, EmbeddingConfig, OpenAiChat,
    OpenAiEmbedder, ProviderConfig, SharedApiKey,
};
use secrecy::SecretString;

const NEW_KEY: &str = "sk-rotated-0123456789";
const OLD_KEY: &str = "sk-revoked-9876543210";

fn key(k: &str) -> Option<SecretString> {
    Some(SecretString::from(k.to_owned()))
}

#[tokio::test]
async fn a_replaced_key_is_sent_from_the_next_request() {
    let fake = FakeServer::start(FakeConfig {
        api_key: Some(NEW_KEY.into()),
        ..FakeConfig::default()
    })
    .await
    .unwrap();
    let shared = SharedApiKey::new(key(OLD_KEY));
    let mut provider = ProviderConfig::new(fake.base_url(), CHAT_MODEL);
    // Ignored while a shared key is set.
    provider.api_key = key("sk-ignored");
    provider.shared_key = Some(shared.clone());
    let chat = OpenAiChat::new(&ChatConfig::new(provider.clone())).unwrap();
    let mut embed_provider = provider.clone();
    embed_provider.model = EMBED_MODEL.into();
    let embedder = OpenAiEmbedder::new(&EmbeddingConfig::new(embed_provider, Some(64))).unwrap();
    let request = ChatRequest::new(vec![ChatMessage::user("Hello?")]);

    let err = chat.chat(&request).await.unwrap_err();
    assert_eq!(err.code, Code::ModelError, "{err:?}");
    assert!(!err.chain().contains(OLD_KEY), "{}", err.chain());
    assert!(embedder.embed(&["x".to_owned()]).await.is_err());

    shared.set(key(NEW_KEY));
    chat.chat(&request).await.expect("the new key is accepted");
    assert_eq!(embedder.embed(&["x".to_owned()]).await.unwrap().len(), 1);
    let statuses: Vec<u16> = fake.log().iter().map(|e| e.status).collect();
    assert_eq!(statuses, [401, 401, 200, 200]);

    // A registry holds keys weakly: gone with the last client.
    let weak = shared.downgrade();
    assert!(weak.upgrade().is_some());
    drop((chat, embedder, provider, shared));
    assert!(weak.upgrade().is_none());
}

#[test]
fn a_shared_key_never_prints() {
    let shared = SharedApiKey::new(key(NEW_KEY));
    let mut provider = ProviderConfig::new("http://127.0.0.1:1/v1", CHAT_MODEL);
    provider.shared_key = Some(shared.clone());
    assert!(!format!("{shared:?} {provider:?}").contains(NEW_KEY));
}
