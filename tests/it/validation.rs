//! Every validation rule, through the real server: each bad request gets INVALID_ARGUMENT with a
//! message naming the field (and object), before any network call, and the provider keeps serving.

use tonic::Code;

use crate::support::harness::*;

const ONE: &str = "objectName: db-password\nobjectType: secret";

/// (case, request, words the message must contain)
fn cases() -> Vec<(&'static str, MountBuilder, Vec<&'static str>)> {
    let wi = || MountBuilder::workload(&objects(&[ONE]));
    let with_object = |o: &str| MountBuilder::workload(&objects(&[o]));
    let mut no_token = wi();
    no_token.token = None;
    let mut bad_permission = wi();
    bad_permission.permission = "abc".into();
    let mut bad_secrets = wi().without("clientID");
    bad_secrets.token = None;
    bad_secrets.secrets = "[1,2]".into();
    let mut half_sp = wi().without("clientID");
    half_sp.token = None;
    half_sp.secrets = r#"{"clientid":"x"}"#.into();
    let mut foreign_token = wi();
    foreign_token.token = Some(
        Pod {
            namespace: "other".into(),
            ..Pod::default()
        }
        .token(WI_AUDIENCE),
    );
    let mut expired = wi();
    expired.token = Some(Pod::default().token_expiring(WI_AUDIENCE, now() - 60));
    let mut wrong_audience = wi();
    wrong_audience.token = Some(Pod::default().token("api://somethingElse"));
    vec![
        (
            "missing keyvaultName",
            wi().without("keyvaultName"),
            vec!["keyvaultName is required"],
        ),
        (
            "near-miss keyVaultName",
            wi().without("keyvaultName")
                .param("keyVaultName", "kv-main"),
            vec!["keyvaultName", "keyVaultName", "case-sensitive"],
        ),
        (
            "bad keyvaultName",
            wi().param("keyvaultName", "kv_main!"),
            vec!["keyvaultName", "3-24"],
        ),
        (
            "missing tenant",
            wi().without("tenantID"),
            vec!["tenantID is required"],
        ),
        (
            "bad tenant",
            wi().param("tenantID", "not/a/tenant"),
            vec!["tenantID", "GUID"],
        ),
        (
            "bad cloud",
            wi().param("cloudName", "AzureMarsCloud"),
            vec!["cloudName", "AzureUSGovernmentCloud"],
        ),
        (
            "stack without file",
            wi().param("cloudName", "AzureStackCloud"),
            vec!["cloudEnvFileName"],
        ),
        (
            "missing objects",
            wi().without("objects"),
            vec!["objects is required"],
        ),
        (
            "empty objects",
            wi().param("objects", "array: []"),
            vec!["objects", "empty"],
        ),
        (
            "objects not yaml",
            wi().param("objects", "array: [unclosed"),
            vec!["objects", "not valid YAML"],
        ),
        (
            "object as mapping",
            wi().param(
                "objects",
                "array:\n  - objectName: a\n    objectType: secret\n",
            ),
            vec!["objects.array[0]", "- |"],
        ),
        (
            "missing objectName",
            with_object("objectType: secret"),
            vec!["objects.array[0]", "objectName is required"],
        ),
        (
            "bad objectName",
            with_object("objectName: my_secret\nobjectType: secret"),
            vec!["objects.array[0] (my_secret)", "objectName"],
        ),
        (
            "missing objectType",
            with_object("objectName: a"),
            vec!["objects.array[0] (a)", "objectType is required"],
        ),
        (
            "bad objectType",
            with_object("objectName: a\nobjectType: certificate"),
            vec!["objects.array[0] (a)", "secret, key or cert"],
        ),
        (
            "bad objectFormat",
            with_object("objectName: a\nobjectType: secret\nobjectFormat: der"),
            vec!["objectFormat", "pem or pfx"],
        ),
        (
            "pfx on a key",
            with_object("objectName: a\nobjectType: key\nobjectFormat: pfx"),
            vec!["objectFormat pfx", "objectType: secret"],
        ),
        (
            "bad objectEncoding",
            with_object("objectName: a\nobjectType: secret\nobjectEncoding: utf-16"),
            vec!["objectEncoding", "utf-8, base64 or hex"],
        ),
        (
            "encoding on a cert",
            with_object("objectName: a\nobjectType: cert\nobjectEncoding: base64"),
            vec!["objectEncoding base64", "objectType: secret"],
        ),
        (
            "bad filePermission",
            with_object("objectName: a\nobjectType: secret\nfilePermission: \"0988\""),
            vec!["objects.array[0] (a)", "filePermission", "0600"],
        ),
        (
            "filePermission too wide",
            with_object("objectName: a\nobjectType: secret\nfilePermission: \"7777\""),
            vec!["filePermission", "0777"],
        ),
        (
            "bad objectVersionHistory",
            with_object("objectName: a\nobjectType: secret\nobjectVersionHistory: lots"),
            vec!["objectVersionHistory", "whole number"],
        ),
        (
            "bad objectVersion",
            with_object("objectName: a\nobjectType: secret\nobjectVersion: ../../x"),
            vec!["objectVersion", "32 hex"],
        ),
        (
            "absolute alias",
            with_object("objectName: a\nobjectType: secret\nobjectAlias: /etc/passwd"),
            vec!["objectAlias", "absolute"],
        ),
        (
            "dot-dot alias",
            with_object("objectName: a\nobjectType: secret\nobjectAlias: x/../../y"),
            vec!["objectAlias", ".."],
        ),
        (
            "unclean alias",
            with_object("objectName: a\nobjectType: secret\nobjectAlias: dir//file"),
            vec!["objectAlias", "empty path element"],
        ),
        // Regression: these were accepted, and the driver then failed to write the file (NUL) or
        // wrote a name that only looks like another (Azure issue #1544).
        (
            "NUL in alias",
            with_object("objectName: a\nobjectType: secret\nobjectAlias: \"tls\\0.pem\""),
            vec!["objects.array[0] (a): objectAlias", "U+0000 (NUL"],
        ),
        (
            "fullwidth full stop in alias",
            with_object("objectName: a\nobjectType: secret\nobjectAlias: \"tls\u{FF0E}pem\""),
            vec!["objectAlias", "U+FF0E (a look-alike of '.')"],
        ),
        (
            "division slash in alias",
            with_object("objectName: a\nobjectType: secret\nobjectAlias: \"etc\u{2215}passwd\""),
            vec!["objectAlias", "U+2215 (a look-alike of '/')"],
        ),
        (
            "bidirectional override in alias",
            with_object("objectName: a\nobjectType: secret\nobjectAlias: \"cert\u{202E}mep.key\""),
            vec!["objectAlias", "U+202E (an invisible formatting character"],
        ),
        (
            "zero-width space in objectName",
            with_object("objectName: \"db\u{200B}password\"\nobjectType: secret"),
            vec!["objectName contains U+200B", "db\\u{200b}password"],
        ),
        (
            "alias element over 255 bytes",
            with_object(&format!(
                "objectName: a\nobjectType: secret\nobjectAlias: {}",
                "ä".repeat(128)
            )),
            vec!["objectAlias", "256 bytes; the limit is 255"],
        ),
        (
            "duplicate files",
            MountBuilder::workload(&objects(&[
                ONE,
                "objectName: other\nobjectType: secret\nobjectAlias: db-password",
            ])),
            vec!["both write the file"],
        ),
        (
            "clientID without token",
            no_token,
            vec!["tokenRequests", "api://AzureADTokenExchange"],
        ),
        (
            "token of another pod",
            foreign_token,
            vec!["subject", "system:serviceaccount:app:web"],
        ),
        ("expired token", expired, vec!["expired"]),
        (
            "token for another audience",
            wrong_audience,
            vec!["api://AzureADTokenExchange"],
        ),
        (
            "no identity",
            {
                let mut b = wi().without("clientID");
                b.token = None;
                b
            },
            vec![
                "no identity selected",
                "clientID",
                "useVMManagedIdentity",
                "nodePublishSecretRef",
            ],
        ),
        (
            "clientId typo",
            {
                let mut b = wi().without("clientID").param("clientId", CLIENT_ID);
                b.token = None;
                b
            },
            vec!["no identity selected", "\"clientId\"", "write clientID"],
        ),
        (
            "exclusive modes",
            wi().param("useVMManagedIdentity", "true")
                .param("usePodIdentity", "true"),
            vec!["mutually exclusive"],
        ),
        (
            "bad boolean",
            wi().param("useVMManagedIdentity", "yes"),
            vec!["useVMManagedIdentity", "boolean"],
        ),
        ("bad permission", bad_permission, vec!["permission", "420"]),
        (
            "secrets not an object",
            bad_secrets,
            vec!["secrets", "nodePublishSecretRef"],
        ),
        (
            "half a service principal",
            half_sp,
            vec!["clientid", "clientsecret"],
        ),
    ]
}

#[tokio::test]
async fn every_validation_error_is_invalid_argument_before_any_network_call() {
    let emu = emulator().await;
    let provider = Provider::start(&emu, |_| {}).await;
    let mut client = provider.client().await;
    for (case, builder, words) in cases() {
        let status = client.mount(builder.build()).await.expect_err(case);
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{case}: {}",
            status.message()
        );
        for word in words {
            assert!(
                status.message().contains(word),
                "{case}: {word:?} missing from {:?}",
                status.message()
            );
        }
        // The attributes carry the service-account token: it must never be echoed back.
        if let Some(token) = &builder.token {
            assert!(
                !status.message().contains(token.as_str()),
                "{case}: token echoed"
            );
        }
    }
    assert_eq!(
        emu.entra().requests(),
        0,
        "validation must happen before any token request"
    );
    assert!(
        emu.kv_requests().is_empty(),
        "validation must happen before any Key Vault call"
    );
}

#[tokio::test]
async fn all_problems_are_reported_together() {
    let emu = emulator().await;
    let provider = Provider::start(&emu, |_| {}).await;
    let builder = MountBuilder::workload(&objects(&[
        "objectName: a\nobjectType: secrets",
        "objectName: b\nobjectType: secret\nfilePermission: \"9\"",
    ]))
    .without("tenantID");
    let status = provider.mount(builder.build()).await.expect_err("invalid");
    let msg = status.message();
    assert!(msg.contains("tenantID is required"), "{msg}");
    assert!(msg.contains("objects.array[0] (a)"), "{msg}");
    assert!(msg.contains("objects.array[1] (b)"), "{msg}");
}

#[tokio::test]
async fn garbage_requests_do_not_stop_the_provider() {
    let emu = federated_emulator().await;
    emu.vault(VAULT).put_secret(
        "db-password",
        plain_secret("0a1b2c3d4e5f60718293a4b5c6d7e8f9", "ok", 1),
    );
    let provider = Provider::start(&emu, |_| {}).await;
    let mut client = provider.client().await;
    let garbage = [
        ("", "", ""),
        ("null", "null", "420"),
        ("[]", "{}", "-1"),
        ("{\"keyvaultName\": 5}", "", ""),
        ("{\"objects\": \"array:\\n  - |\\n    *anchor\"}", "", ""),
        (&"{".repeat(10_000), "x", "99999999999999999999"),
        ("{\"objects\": \"a: &a [*a, *a]\"}", "", ""),
    ];
    for (attributes, secrets, permission) in garbage {
        let status = client
            .mount(akv_csi_provider::proto::MountRequest {
                attributes: attributes.to_owned(),
                secrets: secrets.to_owned(),
                target_path: String::new(),
                permission: permission.to_owned(),
                current_object_version: Vec::new(),
            })
            .await
            .expect_err("garbage is refused");
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{attributes:.40}: {}",
            status.message()
        );
    }
    // Still serving, on the same connection and on a new one.
    assert_eq!(provider.version().await, "akv-csi-provider");
    let response = client
        .mount(MountBuilder::workload(&objects(&[ONE])).build())
        .await
        .expect("a good mount after the bad ones")
        .into_inner();
    assert_eq!(response.files[0].contents, b"ok");
}
