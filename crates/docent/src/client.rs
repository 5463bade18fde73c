//! A small typed client for a running docent server, used by CLI commands given `--url`.

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::Value;

/// `builder` sending `DOCENT_TOKEN` (an API key or access token), when set, as
/// `Authorization: Bearer` on every request: what every `--url` command and benchmark uses.
pub fn with_token(builder: reqwest::ClientBuilder) -> anyhow::Result<reqwest::ClientBuilder> {
    let Some(token) = std::env::var("DOCENT_TOKEN").ok().filter(|t| !t.is_empty()) else {
        return Ok(builder);
    };
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
        .context("DOCENT_TOKEN holds characters a header cannot carry")?;
    value.set_sensitive(true);
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, value);
    Ok(builder.default_headers(headers))
}

/// Client for one server.
pub struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    /// A client for `base` (e.g. `http://127.0.0.1:8080`). With `auth.mode = "builtin"` on the
    /// server, `DOCENT_TOKEN` (an API key or access token) is sent as `Authorization: Bearer`.
    pub fn new(base: &str) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("--url must start with http:// or https://");
        }
        Ok(Self {
            base,
            http: with_token(reqwest::Client::builder())?.build()?,
        })
    }

    async fn json(resp: reqwest::Response) -> anyhow::Result<Value> {
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let code = body["error"]["code"].as_str().unwrap_or("unknown");
            let msg = body["error"]["message"].as_str().unwrap_or("");
            bail!("server answered {status}: {code}: {msg}");
        }
        Ok(body)
    }

    /// GET a JSON resource.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .context("contacting the server")?;
        Self::json(resp).await
    }

    /// POST JSON.
    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .context("contacting the server")?;
        Self::json(resp).await
    }

    /// PATCH JSON.
    pub async fn patch(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let resp = self
            .http
            .patch(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .context("contacting the server")?;
        Self::json(resp).await
    }

    /// DELETE a resource.
    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        let resp = self
            .http
            .delete(format!("{}{path}", self.base))
            .send()
            .await
            .context("contacting the server")?;
        Self::json(resp).await
    }

    /// The collection named `name`, if it exists.
    async fn find_collection(&self, name: &str) -> anyhow::Result<Option<Value>> {
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/collections?limit=200&cursor={c}"),
                None => "/api/v1/collections?limit=200".to_owned(),
            };
            let page = self.get(&path).await?;
            if let Some(c) = page["items"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["name"] == name)
            {
                return Ok(Some(c.clone()));
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return Ok(None),
            }
        }
    }

    /// The id of the collection named `name`, created (with `language`, when given) if missing.
    /// An existing collection of another language is an error: the language is fixed.
    pub async fn collection_id(
        &self,
        name: &str,
        language: Option<&str>,
    ) -> anyhow::Result<String> {
        if let Some(c) = self.find_collection(name).await? {
            if let Some(want) = language
                && c["language"].as_str() != Some(want)
            {
                bail!(
                    "collection `{name}` exists with language `{}`; a collection's language is fixed at creation",
                    c["language"].as_str().unwrap_or("?")
                );
            }
            return Ok(c["id"].as_str().unwrap_or_default().to_owned());
        }
        let mut body = serde_json::json!({ "name": name });
        if let Some(l) = language {
            body["language"] = l.into();
        }
        let created = self.post("/api/v1/collections", &body).await?;
        Ok(created["id"].as_str().unwrap_or_default().to_owned())
    }

    /// The id of the existing collection named `name`.
    pub async fn existing_collection_id(&self, name: &str) -> anyhow::Result<String> {
        match self.find_collection(name).await? {
            Some(c) => Ok(c["id"].as_str().unwrap_or_default().to_owned()),
            None => bail!("no collection named `{name}`"),
        }
    }

    /// Uploads a file (streamed from disk) into a collection.
    pub async fn upload(&self, collection: &str, path: &Path) -> anyhow::Result<Value> {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("upload")
            .to_owned();
        let file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("opening {}", path.display()))?;
        let len = file.metadata().await?.len();
        let stream = tokio_util::io::ReaderStream::new(file);
        let part =
            reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(stream), len)
                .file_name(name);
        let form = reqwest::multipart::Form::new().part("file", part);
        let resp = self
            .http
            .post(format!(
                "{}/api/v1/collections/{collection}/documents",
                self.base
            ))
            .multipart(form)
            .send()
            .await
            .context("contacting the server")?;
        Self::json(resp).await
    }
}
