//! The GitHub Actions pipeline of `examples/ci/github-actions.yml`, run here
//! in its order against the real Debian mirror (network): every `run:` step
//! of every job, as the runner's shell would run it, with the workflow's
//! `${{ … }}` expressions filled in — one registry on 127.0.0.1 as both the
//! shared cache (`oci://`) and the image registry, and each job on its own
//! checkout with its own empty local cache. The plan job's matrix drives
//! one build job per target (each only from the cache, `--require-hits`,
//! pushing its image with its layers mounted from the cache's repository);
//! the merge job's index holds every platform. The GitLab example runs the
//! same way, its build jobs those of the child pipeline its plan job wrote.

mod support;

#[path = "../cache/tests/remote/servers.rs"]
#[allow(dead_code)]
mod servers;

use serde_json::Value;
use serde_yaml::Value as Yaml;
use servers::Registry;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::xbuild::{RunOutput, Xbuild, temp_dir};

/// Replaces each `${{ name }}` in `text` with its value in `values`.
fn expand(text: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").expect("an expression is closed") + start;
        let name = rest[start + 3..end].trim();
        let value = values
            .get(name)
            .unwrap_or_else(|| panic!("the workflow uses `{name}`, which this test does not set"));
        out.push_str(value);
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

fn env_of(node: &Yaml, values: &BTreeMap<String, String>) -> Vec<(String, String)> {
    node.get("env")
        .and_then(Yaml::as_mapping)
        .map(|env| {
            env.iter()
                .map(|(name, value)| {
                    (
                        name.as_str().unwrap().to_owned(),
                        expand(value.as_str().unwrap(), values),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Runs one shell line of a CI job in `workdir` as the runner's shell
/// would (`bash -eo pipefail -c`), with `machine`'s environment, the
/// binary under test first on PATH, and `env`; it must succeed.
fn run_step<'a>(
    machine: &Xbuild,
    workdir: &Path,
    script: &str,
    env: impl IntoIterator<Item = &'a (String, String)>,
    what: &str,
) -> RunOutput {
    let bin = Path::new(env!("CARGO_BIN_EXE_xbuild")).parent().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let mut command = Command::new("bash");
    command.arg("-eo").arg("pipefail").arg("-c").arg(script);
    for (name, value) in machine.command().get_envs() {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    command.current_dir(workdir).env("PATH", &path);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = RunOutput::of(&mut command);
    assert!(output.status.success(), "{what} failed:\n{output}");
    output
}

/// A copy of cowsay with `[ci] targets` naming the three targets the
/// examples' prewarm jobs name.
fn cowsay_with_ci() -> (tempfile::TempDir, PathBuf) {
    let source = temp_dir("xbuild-project-");
    let project = source.path().join("cowsay");
    support::files::copy_project(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/cowsay"),
        &project,
    );
    let manifest = project.join("xbuild.toml");
    let mut text = std::fs::read_to_string(&manifest).unwrap();
    text.push_str("\n[ci]\ntargets = [\"aarch64-linux\", \"armv7-linux\", \"x86_64-linux\"]\n");
    std::fs::write(&manifest, text).unwrap();
    (source, project)
}

/// A signing key made with `xbuild cache keygen`: (public key, the secret
/// key file's text).
fn keygen() -> (String, String) {
    let keys = temp_dir("xbuild-keys-");
    let secret_file = keys.path().join("ci.secret");
    let keygen = Xbuild::new().run(&[
        "cache",
        "keygen",
        "--name",
        "ci",
        "--out",
        secret_file.to_str().unwrap(),
    ]);
    let public = keygen.success().stdout.trim().to_owned();
    let secret = std::fs::read_to_string(&secret_file).unwrap();
    (public, secret.trim_end().to_owned())
}

/// Runs the `run:` steps of `job` in `workdir` with `env`, except the one
/// that installs xbuild (the binary under test is on PATH instead).
fn run_job(
    job: &Yaml,
    workdir: &Path,
    machine: &Xbuild,
    env: &[(String, String)],
    values: &BTreeMap<String, String>,
) -> Vec<RunOutput> {
    let mut outputs = Vec::new();
    let job_env = env_of(job, values);
    for step in job["steps"].as_sequence().unwrap() {
        let Some(script) = step.get("run").and_then(Yaml::as_str) else {
            continue; // `uses:` (checkout): the workdir is the checkout
        };
        if script.contains("cargo install") {
            continue;
        }
        let step_env = env_of(step, values);
        let what = format!("step `{}`", step["name"].as_str().unwrap_or(script));
        outputs.push(run_step(
            machine,
            workdir,
            script,
            env.iter().chain(&job_env).chain(&step_env),
            &what,
        ));
    }
    outputs
}

fn checkout(project: &Path) -> (tempfile::TempDir, PathBuf) {
    let dir = temp_dir("xbuild-checkout-");
    let path = dir.path().join("project");
    support::files::copy_project(project, &path);
    (dir, path)
}

#[test]
fn network_the_github_actions_example_builds_pushes_and_merges() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ci/github-actions.yml");
    let workflow: Yaml = serde_yaml::from_str(&std::fs::read_to_string(&example).unwrap()).unwrap();
    let jobs = &workflow["jobs"];

    // The project: cowsay, with the targets the example's prewarm names.
    let (_source, project) = cowsay_with_ci();

    let registry = Registry::start();
    let host = format!("127.0.0.1:{}", registry.port);
    let (public, secret) = keygen();
    let image = format!("{host}/team/cowsay");
    let mut values = BTreeMap::from([
        ("vars.IMAGE".to_owned(), image.clone()),
        (
            "vars.XBUILD_REMOTE".to_owned(),
            format!("oci://{host}/team/xbuild-cache"),
        ),
        ("vars.XBUILD_PUBLIC_KEY".to_owned(), public),
        ("vars.XBUILD_INSTALL_URL".to_owned(), "unused".to_owned()),
        ("secrets.XBUILD_SIGNING_KEY".to_owned(), secret),
    ]);
    let outputs_dir = temp_dir("xbuild-github-output-");
    let github_output = outputs_dir.path().join("output");
    std::fs::write(&github_output, "").unwrap();
    let mut env: Vec<(String, String)> = env_of(&workflow, &values);
    env.push(("GITHUB_OUTPUT".into(), github_output.display().to_string()));

    // plan: the matrix, as a job output.
    let (_plan_dir, plan_checkout) = checkout(&project);
    run_job(
        &jobs["plan"],
        &plan_checkout,
        &Xbuild::new().with_host_apt(),
        &env,
        &values,
    );
    let written = std::fs::read_to_string(&github_output).unwrap();
    let matrix_line = written
        .lines()
        .find_map(|line| line.strip_prefix("matrix="))
        .unwrap_or_else(|| panic!("the plan job wrote no matrix: {written}"));
    let matrix: Value = serde_json::from_str(matrix_line).unwrap();
    values.insert("needs.plan.outputs.matrix".into(), matrix_line.to_owned());
    let include = matrix["include"].as_array().unwrap().clone();
    assert_eq!(include.len(), 3, "{matrix}");

    // prewarm: machine A, its own empty cache.
    let (_prewarm_dir, prewarm_checkout) = checkout(&project);
    run_job(
        &jobs["prewarm"],
        &prewarm_checkout,
        &Xbuild::new().with_host_apt(),
        &env,
        &values,
    );
    assert!(!prewarm_checkout.join("key.secret").exists());

    // build: one job per matrix entry, each on a machine of its own.
    for entry in &include {
        let target = entry["target"].as_str().unwrap();
        let mut values = values.clone();
        values.insert("matrix.target".into(), target.to_owned());
        values.insert(
            "matrix.platform".into(),
            entry["platform"].as_str().unwrap().to_owned(),
        );
        let (_dir, build_checkout) = checkout(&project);
        let outputs = run_job(
            &jobs["build"],
            &build_checkout,
            &Xbuild::new().with_host_apt(),
            &env,
            &values,
        );
        let said = &outputs.last().unwrap().stderr;
        // The layers came from the cache's repository by mounting.
        let line = said
            .lines()
            .find(|line| line.contains(" mounted"))
            .unwrap_or_else(|| panic!("{target}: no push line:\n{said}"));
        let mounted: u64 = line
            .rsplit(", ")
            .next()
            .and_then(|part| part.split_whitespace().next())
            .and_then(|number| number.parse().ok())
            .unwrap_or_else(|| panic!("{target}: {line}"));
        assert!(mounted > 0, "{target}: {line}");
    }

    // merge: one index of every platform.
    let (_merge_dir, merge_checkout) = checkout(&project);
    run_job(
        &jobs["merge"],
        &merge_checkout,
        &Xbuild::new(),
        &env,
        &values,
    );
    let raw = support::run_ok(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{image}:latest"),
    ]));
    let index: Value = serde_json::from_str(&raw).unwrap();
    let mut architectures: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|manifest| manifest["platform"]["architecture"].as_str().unwrap())
        .collect();
    architectures.sort();
    assert_eq!(architectures, ["amd64", "arm", "arm64"], "{index}");
}

/// Runs GitLab `script` lines (and `after_script`) as a runner's shell
/// would, with `env` and the job's `variables`.
fn run_gitlab_job(
    job: &Yaml,
    workdir: &Path,
    machine: &Xbuild,
    env: &[(String, String)],
) -> Vec<RunOutput> {
    let variables: Vec<(String, String)> = job
        .get("variables")
        .and_then(Yaml::as_mapping)
        .map(|variables| {
            variables
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().unwrap().to_owned(),
                        value.as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let lines: Vec<&str> = ["script", "after_script"]
        .iter()
        .filter_map(|part| job.get(*part).and_then(Yaml::as_sequence))
        .flatten()
        .map(|line| line.as_str().unwrap())
        .collect();
    let mut outputs = Vec::new();
    for line in lines {
        let output = run_step(
            machine,
            workdir,
            line,
            env.iter().chain(&variables),
            &format!("`{line}`"),
        );
        outputs.push(output);
    }
    outputs
}

#[test]
fn network_the_gitlab_example_and_its_generated_child_pipeline() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ci/gitlab-ci.yml");
    let pipeline: Yaml = serde_yaml::from_str(&std::fs::read_to_string(&example).unwrap()).unwrap();
    let (_source, project) = cowsay_with_ci();

    let registry = Registry::start();
    let host = format!("127.0.0.1:{}", registry.port);
    let (public, secret) = keygen();
    let image = format!("{host}/group/cowsay");
    // The pipeline's `variables` are GitLab's to expand; here the image is
    // what `$CI_REGISTRY_IMAGE` names.
    assert_eq!(pipeline["variables"]["IMAGE"], "$CI_REGISTRY_IMAGE");
    let env = vec![
        ("CI_REGISTRY_IMAGE".to_owned(), image.clone()),
        ("IMAGE".to_owned(), image.clone()),
        (
            "XBUILD_REMOTE".to_owned(),
            format!("oci://{host}/group/xbuild-cache"),
        ),
        ("XBUILD_PUBLIC_KEY".to_owned(), public),
        ("XBUILD_SIGNING_KEY".to_owned(), secret),
    ];

    let (_prewarm_dir, prewarm_checkout) = checkout(&project);
    run_gitlab_job(
        &pipeline["prewarm"],
        &prewarm_checkout,
        &Xbuild::new().with_host_apt(),
        &env,
    );
    assert!(!prewarm_checkout.join("key.secret").exists());

    let (_plan_dir, plan_checkout) = checkout(&project);
    run_gitlab_job(&pipeline["plan"], &plan_checkout, &Xbuild::new(), &env);
    let artifact = pipeline["build"]["trigger"]["include"][0]["artifact"]
        .as_str()
        .unwrap();
    let child: Yaml =
        serde_yaml::from_str(&std::fs::read_to_string(plan_checkout.join(artifact)).unwrap())
            .unwrap();
    let jobs: Vec<(&str, &Yaml)> = child
        .as_mapping()
        .unwrap()
        .iter()
        .filter_map(|(name, job)| {
            Some((name.as_str()?, job)).filter(|(name, _)| name.starts_with("build:"))
        })
        .collect();
    assert_eq!(jobs.len(), 3, "{child:?}");
    for (name, job) in jobs {
        let (_dir, build_checkout) = checkout(&project);
        let outputs = run_gitlab_job(job, &build_checkout, &Xbuild::new().with_host_apt(), &env);
        assert!(
            outputs.last().unwrap().stderr.contains("pushed "),
            "{name}: {}",
            outputs.last().unwrap()
        );
    }

    let (_merge_dir, merge_checkout) = checkout(&project);
    run_gitlab_job(&pipeline["merge"], &merge_checkout, &Xbuild::new(), &env);
    let raw = support::run_ok(Command::new("skopeo").args([
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{image}:latest"),
    ]));
    let index: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 3, "{index}");
}
