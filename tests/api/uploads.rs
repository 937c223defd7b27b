//! Uploads (SPEC §4.3, issue 19), on both backends and both stores (a directory, and a real
//! S3-compatible server): upload, sniffing, thumbnails, ranges, the access matrix, streaming
//! limits with nothing left behind, a client gone mid-upload, a decompression bomb, the
//! quota, the cleanup of unattached uploads, and two replicas sharing an S3 bucket.

use std::{io::Cursor, time::Duration};

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use crate::support::{
    Mode, TestApp,
    authz::{create_group, id_of},
    http::TestUser,
    uploads::{
        Store, eventually, fetch, leftovers, png, png_header_claiming, sha256_hex, spawn_with_store, upload_multipart,
        upload_raw,
    },
};

macro_rules! in_both_stores {
    ($($name:ident),* $(,)?) => {
        mod embedded_local { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let app = super::spawn(crate::support::Mode::Embedded, crate::support::uploads::Store::Local).await;
                super::$name(app.expect("the embedded app")).await
            }
        )* }
        mod embedded_s3 { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some(app) = super::spawn(crate::support::Mode::Embedded, crate::support::uploads::Store::S3).await {
                    super::$name(app).await
                }
            }
        )* }
        mod production_local { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some(app) = super::spawn(crate::support::Mode::Production, crate::support::uploads::Store::Local).await {
                    super::$name(app).await
                }
            }
        )* }
        mod production_s3 { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                if let Some(app) = super::spawn(crate::support::Mode::Production, crate::support::uploads::Store::S3).await {
                    super::$name(app).await
                }
            }
        )* }
    };
}

in_both_stores!(
    an_image_is_sniffed_measured_and_thumbnailed,
    ranges_etags_and_the_headers_that_keep_files_inert,
    who_may_read_an_upload,
    a_message_names_uploads_that_are_the_senders,
    too_big_is_refused_while_streaming_and_leaves_nothing,
    a_client_gone_mid_upload_leaves_nothing,
    a_decompression_bomb_is_refused_before_decoding,
    types_outside_the_allow_list_are_refused,
    the_quota_holds,
    unattached_uploads_are_deleted_after_a_day,
);

mod replicated_s3 {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_share_the_bucket_and_each_deletion_happens_once() {
        let store = crate::support::uploads::Store::S3;
        if let Some(app) = super::spawn(crate::support::Mode::Replicated, store).await {
            super::replicas_share_the_bucket_and_each_deletion_happens_once(app).await
        }
    }
}

/// Small limits, so the tests move little data: 1 MiB a file, 3 MiB a user.
async fn spawn(mode: Mode, store: Store) -> Option<TestApp> {
    let limits = [
        ("UPLOAD_MAX_BYTES", "1048576"),
        ("UPLOAD_QUOTA_BYTES", "3145728"),
        ("UPLOAD_MAX_IMAGE_PIXELS", "4000000"),
        ("MESSAGE_RATE_PER_MIN", "100000"),
    ];
    spawn_with_store(mode, store, &limits).await
}

fn id(body: &Value) -> Uuid {
    id_of(&body["id"])
}

/// Sends a message with `media` into `conversation` over REST.
async fn send_media(user: &TestUser, conversation: Uuid, media: Value) -> crate::support::http::Reply {
    let body = json!({"clientMessageId": Uuid::new_v4().to_string(), "content": "look", "contentType": "image", "media": media});
    user.client.post(&format!("/api/conversations/{conversation}/messages"), body).await
}

async fn an_image_is_sniffed_measured_and_thumbnailed(app: TestApp) {
    let ann = app.register("Ann").await;
    let picture = png(800, 400);
    // PNG bytes declared as text/plain: the bytes decide.
    let reply = upload_multipart(&ann, picture.clone(), "text/plain", "C:\\photos\\cat.png").await;
    let body = reply.assert_status(201).clone();
    let upload = id(&body);
    assert_eq!(body["contentType"], "image/png");
    assert_eq!(body["size"], picture.len());
    assert_eq!(body["sha256"], sha256_hex(&picture));
    assert_eq!((body["width"].as_u64(), body["height"].as_u64()), (Some(800), Some(400)));
    assert_eq!(body["name"], "cat.png");
    assert_eq!(body["url"], format!("/api/uploads/{upload}"));
    assert_eq!(body["thumbnailUrl"], format!("/api/uploads/{upload}/thumbnail"));

    let original = fetch(&ann, &format!("/api/uploads/{upload}"), &[]).await;
    assert_eq!(original.status, 200);
    assert_eq!(original.bytes, picture);
    assert_eq!(original.header("content-type"), "image/png");
    assert!(original.header("content-disposition").starts_with("inline"), "{}", original.header("content-disposition"));

    let thumbnail = fetch(&ann, &format!("/api/uploads/{upload}/thumbnail"), &[]).await;
    assert_eq!(thumbnail.status, 200);
    assert_eq!(thumbnail.header("content-type"), "image/jpeg");
    let decoded = image::load_from_memory(&thumbnail.bytes).expect("the thumbnail decodes");
    assert_eq!((decoded.width(), decoded.height()), (320, 160));

    // A raw body works the same way; a picture with transparency gets a PNG thumbnail.
    let mut rgba = Vec::new();
    image::RgbaImage::from_fn(100, 700, |x, _| image::Rgba([0, 0, 0, (x * 2) as u8]))
        .write_to(&mut Cursor::new(&mut rgba), image::ImageFormat::Png)
        .expect("encode");
    let raw = upload_raw(&ann, rgba, "application/octet-stream").await;
    let raw = raw.assert_status(201).clone();
    assert_eq!((raw["width"].as_u64(), raw["height"].as_u64()), (Some(100), Some(700)));
    let thumbnail = fetch(&ann, &format!("/api/uploads/{}/thumbnail", id(&raw)), &[]).await;
    assert_eq!(thumbnail.header("content-type"), "image/png");
    let decoded = image::load_from_memory(&thumbnail.bytes).expect("the thumbnail decodes");
    assert_eq!((decoded.width(), decoded.height()), (46, 320));

    // A file that is not an image has no thumbnail and no dimensions.
    let text = upload_raw(&ann, b"just some notes\n".to_vec(), "image/png").await;
    let text = text.assert_status(201).clone();
    assert_eq!(text["contentType"], "text/plain");
    assert!(text.get("thumbnailUrl").is_none() && text.get("width").is_none(), "{text}");
    let missing = fetch(&ann, &format!("/api/uploads/{}/thumbnail", id(&text)), &[]).await;
    assert_eq!(missing.status, 404);
}

async fn ranges_etags_and_the_headers_that_keep_files_inert(app: TestApp) {
    let ann = app.register("Ann").await;
    let content: Vec<u8> = (0..100_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let body = upload_raw(&ann, content.clone(), "text/html").await.assert_status(201).clone();
    let path = format!("/api/uploads/{}", id(&body));

    let whole = fetch(&ann, &path, &[]).await;
    assert_eq!(whole.status, 200);
    assert_eq!(whole.bytes, content);
    assert_eq!(whole.header("content-length"), "100000");
    assert_eq!(whole.header("accept-ranges"), "bytes");
    assert_eq!(whole.header("etag"), format!("\"{}\"", sha256_hex(&content)));
    assert!(whole.header("cache-control").starts_with("private"), "{}", whole.header("cache-control"));
    assert_eq!(whole.header("x-content-type-options"), "nosniff");
    assert!(whole.header("content-security-policy").contains("sandbox"));
    // Not a picture: an attachment, whatever it holds.
    assert!(whole.header("content-disposition").starts_with("attachment"));
    assert_eq!(whole.header("content-type"), "text/plain; charset=utf-8");

    let middle = fetch(&ann, &path, &[("range", "bytes=10-19")]).await;
    assert_eq!(middle.status, 206);
    assert_eq!(middle.bytes, content[10..20]);
    assert_eq!(middle.header("content-range"), "bytes 10-19/100000");
    assert_eq!(middle.header("content-length"), "10");

    let tail = fetch(&ann, &path, &[("range", "bytes=-5")]).await;
    assert_eq!(tail.status, 206);
    assert_eq!(tail.bytes, content[99_995..]);
    let open = fetch(&ann, &path, &[("range", "bytes=99990-")]).await;
    assert_eq!((open.status.as_u16(), open.bytes.len()), (206, 10));

    let past = fetch(&ann, &path, &[("range", "bytes=200000-")]).await;
    assert_eq!(past.status, 416);
    assert_eq!(past.header("content-range"), "bytes */100000");
    assert_eq!(past.json()["error"]["code"], "RANGE_NOT_SATISFIABLE");
    // A header that does not parse is ignored: the whole file.
    let nonsense = fetch(&ann, &path, &[("range", "pages=1-2")]).await;
    assert_eq!((nonsense.status.as_u16(), nonsense.bytes.len()), (200, 100_000));

    let etag = whole.header("etag").to_owned();
    let cached = fetch(&ann, &path, &[("if-none-match", &etag)]).await;
    assert_eq!(cached.status, 304);
    assert!(cached.bytes.is_empty());
}

async fn who_may_read_an_upload(app: TestApp) {
    let ann = app.register("Ann").await;
    let bob = app.register("Bob").await;
    let cat = app.register("Cat").await;
    let dan = app.register("Dan").await;
    let upload = id(upload_raw(&ann, png(40, 30), "image/png").await.assert_status(201));
    let paths = [format!("/api/uploads/{upload}"), format!("/api/uploads/{upload}/thumbnail")];
    let statuses = async |user: &TestUser| {
        let mut seen = Vec::new();
        for path in &paths {
            seen.push(fetch(user, path, &[]).await.status.as_u16());
        }
        seen
    };
    // Before any message: the uploader only; a stranger sees what an unknown id gets.
    assert_eq!(statuses(&ann).await, [200, 200]);
    assert_eq!(statuses(&bob).await, [404, 404]);
    let unknown = fetch(&bob, &format!("/api/uploads/{}", Uuid::now_v7()), &[]).await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"]["code"], "NOT_FOUND");

    let group = create_group(&app, &ann, &[&bob, &dan]).await;
    send_media(&ann, group, json!([{"uploadId": upload}])).await.assert_status(201);
    assert_eq!(statuses(&bob).await, [200, 200], "a participant");
    assert_eq!(statuses(&dan).await, [200, 200], "a participant");
    assert_eq!(statuses(&cat).await, [404, 404], "a stranger");

    // A removed member loses access; so does a member who joins later (the message is
    // from before they joined).
    ann.client.delete(&format!("/api/conversations/{group}/participants/{}", dan.id)).await.assert_status(204);
    assert_eq!(statuses(&dan).await, [404, 404], "a removed member");
    let added = json!({"userIds": [cat.id]});
    ann.client.post(&format!("/api/conversations/{group}/participants"), added).await.assert_status(200);
    assert_eq!(statuses(&cat).await, [404, 404], "a member who joined after the message");
    assert_eq!(statuses(&bob).await, [200, 200]);
    // A malformed id is a 400.
    let malformed = fetch(&bob, "/api/uploads/not-an-id", &[]).await;
    assert_eq!(malformed.status, 400);
    // Without a token: 401.
    let anonymous = app.client().get(&format!("/api/uploads/{upload}")).await;
    anonymous.assert_error(401, "AUTH_FAILED");
}

async fn a_message_names_uploads_that_are_the_senders(app: TestApp) {
    let ann = app.register("Ann").await;
    let bob = app.register("Bob").await;
    let group = create_group(&app, &ann, &[&bob]).await;
    let picture = png(640, 480);
    let upload = upload_raw(&ann, picture, "image/png").await.assert_status(201).clone();
    let upload_id = id(&upload);
    // The client may name it only (and a name); the server fills in the rest.
    let media = json!([{"uploadId": upload_id, "type": "file", "url": "https://evil.example/x"}]);
    let sent = send_media(&ann, group, media).await.assert_status(201).clone();
    let item = &sent["media"][0];
    assert_eq!(item["uploadId"], upload_id.to_string());
    assert_eq!(item["url"], format!("/api/uploads/{upload_id}"));
    assert_eq!(item["type"], "image");
    assert_eq!(item["contentType"], "image/png");
    assert_eq!(item["size"], upload["size"]);
    assert_eq!((item["width"].as_u64(), item["height"].as_u64()), (Some(640), Some(480)));
    assert_eq!(item["thumbnailUrl"], format!("/api/uploads/{upload_id}/thumbnail"));
    // History shows the same.
    let history = bob.client.get(&format!("/api/conversations/{group}/messages")).await;
    let stored = history.assert_status(200)["messages"].as_array().expect("messages").clone();
    assert!(stored.iter().any(|m| m["media"][0]["url"] == item["url"]), "{stored:?}");

    // Someone else's upload cannot be attached, not even by a participant who can read it.
    let refused = send_media(&bob, group, json!([{"uploadId": upload_id}])).await;
    refused.assert_error(400, "VALIDATION_ERROR");
    assert_eq!(refused.body["error"]["details"]["field"], "media");
    let unknown = send_media(&ann, group, json!([{"uploadId": Uuid::now_v7()}])).await;
    unknown.assert_error(400, "VALIDATION_ERROR");
    let malformed = send_media(&ann, group, json!([{"uploadId": "nope"}])).await;
    malformed.assert_error(400, "VALIDATION_ERROR");
    // Plain URLs (seed 002) still work, next to uploads.
    let mixed = json!([{"url": "https://cdn.example/a.png"}, {"uploadId": upload_id}]);
    let sent = send_media(&ann, group, mixed).await.assert_status(201).clone();
    assert_eq!(sent["media"][0]["url"], "https://cdn.example/a.png");
    assert_eq!(sent["media"][1]["url"], format!("/api/uploads/{upload_id}"));
}

async fn too_big_is_refused_while_streaming_and_leaves_nothing(app: TestApp) {
    let ann = app.register("Ann").await;
    let limit = 1024 * 1024;
    // Declared too big: refused before a byte is read.
    let declared = upload_raw(&ann, vec![7u8; limit + 1], "application/octet-stream").await;
    declared.assert_error(413, "PAYLOAD_TOO_LARGE");
    // No length declared (chunked): refused when the limit is passed, mid-stream.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..24).map(|_| Ok(vec![7u8; 64 * 1024])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let request = ann.client.request(reqwest::Method::POST, "/api/uploads").body(body);
    let streamed = ann.client.send(request).await;
    streamed.assert_error(413, "PAYLOAD_TOO_LARGE");
    // The same in a multipart body.
    let multipart = upload_multipart(&ann, vec![7u8; limit + 10], "application/octet-stream", "big.bin").await;
    multipart.assert_error(413, "PAYLOAD_TOO_LARGE");
    // Exactly the limit is fine, and is all that is stored.
    let fits = upload_raw(&ann, vec![7u8; limit], "application/octet-stream").await;
    let fits = id(fits.assert_status(201));
    let app = &app;
    eventually("only the upload that fitted is stored", || async move { leftovers(app).await == [fits.to_string()] })
        .await;
    assert_eq!(app.state.platform.storage.upload_usage(ann.id).await.expect("usage"), limit as i64);
}

async fn a_client_gone_mid_upload_leaves_nothing(app: TestApp) {
    let ann = app.register("Ann").await;
    // Declares 1,000,000 bytes (under the limit) and stops after 600,000.
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address).await.expect("connect");
    let head = format!(
        "POST /api/uploads HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n",
        ann.token
    );
    stream.write_all(head.as_bytes()).await.expect("send the head");
    stream.write_all(&vec![9u8; 600_000]).await.expect("send half the body");
    stream.flush().await.expect("flush");
    // The upload is under way once the store holds something of it.
    let app = &app;
    eventually("the upload has started writing", || async move { !leftovers(app).await.is_empty() }).await;
    drop(stream);
    eventually("nothing of the interrupted upload is left", || async move { leftovers(app).await.is_empty() }).await;
    assert_eq!(app.state.platform.storage.upload_usage(ann.id).await.expect("usage"), 0);
}

async fn a_decompression_bomb_is_refused_before_decoding(app: TestApp) {
    let ann = app.register("Ann").await;
    // 100,000 × 100,000 grayscale pixels would be 10 GB decoded; the file is 60 bytes.
    let bomb = png_header_claiming(100_000, 100_000);
    let refused = upload_raw(&ann, bomb, "image/png").await;
    refused.assert_error(413, "PAYLOAD_TOO_LARGE");
    assert!(refused.body["error"]["message"].as_str().unwrap_or_default().contains("pixels"), "{}", refused.body);
    // Just over this server's 4,000,000-pixel limit, as a real (small, compressible) PNG.
    let over = upload_raw(&ann, png(2001, 2000), "image/png").await;
    over.assert_error(413, "PAYLOAD_TOO_LARGE");
    // An image that claims to be a PNG and is not one.
    let mut broken = png(50, 50);
    broken.truncate(60);
    let broken = upload_raw(&ann, broken, "image/png").await;
    broken.assert_error(400, "VALIDATION_ERROR");
    let app = &app;
    eventually("nothing of the refused images is left", || async move { leftovers(app).await.is_empty() }).await;
    assert_eq!(app.state.platform.storage.upload_usage(ann.id).await.expect("usage"), 0);
}

async fn types_outside_the_allow_list_are_refused(app: TestApp) {
    let ann = app.register("Ann").await;
    let page = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>".to_vec();
    let refused = upload_raw(&ann, page.clone(), "image/png").await;
    refused.assert_error(415, "UNSUPPORTED_MEDIA_TYPE");
    let multipart = upload_multipart(&ann, page, "image/png", "innocent.png").await;
    multipart.assert_error(415, "UNSUPPORTED_MEDIA_TYPE");
    let empty = upload_raw(&ann, Vec::new(), "text/plain").await;
    empty.assert_error(400, "VALIDATION_ERROR");
    let form = reqwest::multipart::Form::new().text("other", "no file here");
    let request = ann.client.request(reqwest::Method::POST, "/api/uploads").multipart(form);
    ann.client.send(request).await.assert_error(400, "VALIDATION_ERROR");
    assert!(leftovers(&app).await.is_empty());
}

async fn the_quota_holds(app: TestApp) {
    let ann = app.register("Ann").await;
    let bob = app.register("Bob").await;
    let mib = 1024 * 1024;
    for _ in 0..3 {
        upload_raw(&ann, vec![1u8; mib], "application/octet-stream").await.assert_status(201);
    }
    // The quota is 3 MiB: nothing more fits, not even a byte.
    let over = upload_raw(&ann, vec![1u8; 10], "application/octet-stream").await;
    over.assert_error(413, "PAYLOAD_TOO_LARGE");
    assert!(over.body["error"]["message"].as_str().unwrap_or_default().contains("quota"), "{}", over.body);
    // Another user has their own.
    upload_raw(&bob, vec![1u8; mib], "application/octet-stream").await.assert_status(201);
    assert_eq!(app.state.platform.storage.upload_usage(ann.id).await.expect("usage"), 3 * mib as i64);
    let app = &app;
    eventually("four files stored", || async move { leftovers(app).await.len() == 4 }).await;
}

async fn unattached_uploads_are_deleted_after_a_day(app: TestApp) {
    let ann = app.register("Ann").await;
    let bob = app.register("Bob").await;
    let group = create_group(&app, &ann, &[&bob]).await;
    let kept = id(upload_raw(&ann, png(30, 30), "image/png").await.assert_status(201));
    let dropped = id(upload_raw(&ann, png(30, 30), "image/png").await.assert_status(201));
    send_media(&ann, group, json!([{"uploadId": kept}])).await.assert_status(201);
    let uploads = &app.state.services.uploads;
    // Not yet a day old: nothing goes.
    app.clock.advance(Duration::from_secs(23 * 3600));
    assert_eq!(uploads.sweep().await, 0);
    app.clock.advance(Duration::from_secs(2 * 3600));
    assert_eq!(uploads.sweep().await, 1);
    assert_eq!(uploads.sweep().await, 0, "a deletion happens once");
    let (ann, bob) = (ann.sign_in_again(&app).await, bob.sign_in_again(&app).await);
    assert_eq!(fetch(&ann, &format!("/api/uploads/{dropped}"), &[]).await.status, 404);
    assert_eq!(fetch(&bob, &format!("/api/uploads/{kept}"), &[]).await.status, 200);
    assert_eq!(leftovers(&app).await, [kept.to_string(), format!("{kept}.thumb")]);
}

async fn replicas_share_the_bucket_and_each_deletion_happens_once(app: TestApp) {
    let other = app.other.as_deref().expect("a second replica");
    let ann = app.register("Ann").await;
    let bob = app.register("Bob").await;
    let group = create_group(&app, &ann, &[&bob]).await;
    // Uploaded through one replica, attached and downloaded through the other.
    let picture = png(100, 100);
    let upload = id(upload_raw(&ann, picture.clone(), "image/png").await.assert_status(201));
    let bob_there = TestUser { client: other.client().with_token(&bob.token), ..bob };
    let ann_there = TestUser { client: other.client().with_token(&ann.token), ..ann };
    send_media(&ann_there, group, json!([{"uploadId": upload}])).await.assert_status(201);
    let fetched = fetch(&bob_there, &format!("/api/uploads/{upload}"), &[]).await;
    assert_eq!((fetched.status.as_u16(), fetched.bytes == picture), (200, true));
    // Unattached uploads, swept by both replicas at once: each is deleted by one of them.
    for _ in 0..12 {
        upload_raw(&ann_there, vec![3u8; 1000], "application/octet-stream").await.assert_status(201);
    }
    app.clock.advance(Duration::from_secs(25 * 3600));
    let (here, there) = tokio::join!(app.state.services.uploads.sweep(), other.state.services.uploads.sweep());
    assert_eq!(here + there, 12, "here {here}, there {there}");
    assert_eq!(leftovers(&app).await, [upload.to_string(), format!("{upload}.thumb")]);
}
