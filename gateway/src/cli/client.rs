//! A small client of the admin API for the CLI's client commands.
//!
//! A refusal comes back as the server's problem+json, shown to the user as it is; a
//! connection failure is an error of its own (exit code 2).

use serde_json::Value;

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the admin API at {url}: {source}")]
    Connect { url: String, source: reqwest::Error },
    #[error("{status} {title}: {detail}{errors}")]
    Refused {
        status: u16,
        kind: String,
        title: String,
        detail: String,
        errors: String,
        body: Value,
    },
    #[error("the admin API answered {status} with a body that is not JSON")]
    NotJson { status: u16 },
    #[error("cannot write the output: {source}")]
    Output { source: std::io::Error },
}

impl ClientError {
    /// The problem `type` of a refusal.
    pub fn problem_type(&self) -> Option<&str> {
        match self {
            ClientError::Refused { kind, .. } => Some(kind),
            _ => None,
        }
    }
}

/// The admin API's address and the caller's token.
#[derive(Debug, Clone)]
pub struct AdminClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl AdminClient {
    pub fn new(base: &str, token: Option<String>) -> Self {
        AdminClient {
            base: base.trim_end_matches('/').to_owned(),
            token,
            http: reqwest::Client::new(),
        }
    }

    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.send(self.http.get(self.url(path))).await
    }

    /// GET returning the raw body (for specs).
    pub async fn get_raw(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        let url = self.url(path);
        let response = self
            .authorize(self.http.get(&url))
            .send()
            .await
            .map_err(|source| ClientError::Connect {
                url: self.base.clone(),
                source,
            })?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|source| ClientError::Connect {
                url: self.base.clone(),
                source,
            })?;
        if status >= 400 {
            return Err(refusal(status, &bytes));
        }
        Ok(bytes.to_vec())
    }

    /// GET, copying the body to `out` chunk by chunk as it arrives (exports of any size).
    pub async fn download(
        &self,
        path: &str,
        accept: &str,
        out: &mut dyn std::io::Write,
    ) -> Result<u64, ClientError> {
        let connect = |source| ClientError::Connect {
            url: self.base.clone(),
            source,
        };
        let mut response = self
            .authorize(self.http.get(self.url(path)).header("accept", accept))
            .send()
            .await
            .map_err(connect)?;
        let status = response.status().as_u16();
        if status >= 400 {
            let bytes = response.bytes().await.map_err(connect)?;
            return Err(refusal(status, &bytes));
        }
        let mut copied = 0;
        while let Some(chunk) = response.chunk().await.map_err(connect)? {
            out.write_all(&chunk)
                .map_err(|source| ClientError::Output { source })?;
            copied += chunk.len() as u64;
        }
        out.flush()
            .map_err(|source| ClientError::Output { source })?;
        Ok(copied)
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.send(self.http.post(self.url(path)).json(body)).await
    }

    /// POST raw bytes (a spec), with query parameters encoded by the client.
    pub async fn post_bytes(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
        query: &[(&str, &str)],
    ) -> Result<Value, ClientError> {
        self.send(
            self.http
                .post(self.url(path))
                .query(query)
                .header("content-type", content_type)
                .body(body),
        )
        .await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.send(self.http.put(self.url(path)).json(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Value, ClientError> {
        self.send(self.http.delete(self.url(path))).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn authorize(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    async fn send(&self, rb: reqwest::RequestBuilder) -> Result<Value, ClientError> {
        let response = self
            .authorize(rb)
            .send()
            .await
            .map_err(|source| ClientError::Connect {
                url: self.base.clone(),
                source,
            })?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|source| ClientError::Connect {
                url: self.base.clone(),
                source,
            })?;
        if status >= 400 {
            return Err(refusal(status, &bytes));
        }
        if bytes.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|_| ClientError::NotJson { status })
    }
}

fn refusal(status: u16, bytes: &[u8]) -> ClientError {
    let body: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
    let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let errors = body
        .get("errors")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|e| {
                    format!(
                        "\n  - {} {}: {}",
                        e.get("in").and_then(Value::as_str).unwrap_or(""),
                        e.get("pointer").and_then(Value::as_str).unwrap_or(""),
                        e.get("message").and_then(Value::as_str).unwrap_or("")
                    )
                })
                .collect::<String>()
        })
        .unwrap_or_default();
    ClientError::Refused {
        status,
        kind: text("type"),
        title: text("title"),
        detail: text("detail"),
        errors,
        body,
    }
}
