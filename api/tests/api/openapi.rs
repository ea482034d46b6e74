use reqwest::{Method, StatusCode};

use crate::helpers::{Auth, Backend, spawn_app};

#[tokio::test]
async fn the_openapi_document_describes_routes_that_exist() {
    let app = spawn_app(Backend::Sqlite).await;
    let (status, document) = app
        .call(Method::GET, "/openapi.json", &Auth::None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(document["openapi"], "3.1.0");
    let operations = capstan_api::openapi::operations();
    assert!(operations.len() >= 20, "{operations:?}");
    for (method, path) in operations {
        let concrete = path
            .replace("{id}", "00000000-0000-0000-0000-000000000000")
            .replace("{cluster_id}", "00000000-0000-0000-0000-000000000000");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let response = app
            .client
            .request(method.clone(), app.url(&concrete))
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is documented but not routed"
        );
        assert!(
            !text.contains("route not found"),
            "{method} {path} is documented but not routed"
        );
    }
}
