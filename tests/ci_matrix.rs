//! `xbuild ci matrix`: a project's targets as a GitHub Actions matrix (JSON)
//! or a GitLab child pipeline (YAML, read back by an independent parser),
//! from `[ci] targets` or `--target`; its errors; and the CI examples in
//! `examples/ci/` parse as YAML and use the matrix the way it is printed.
//! Nothing here needs an archive: the command reads only the manifest.

mod support;

use serde_json::json;
use serde_yaml::Value as Yaml;
use support::xbuild::{Project, RunOutput, Xbuild};

const IMAGE: &str = "[image]\nname = \"app\"\n";

/// `xbuild ci matrix . EXTRA…` in the project's directory, as a CI job runs it.
fn matrix(project: &Project, extra: &[&str]) -> RunOutput {
    matrix_of(project, ".", extra)
}

/// `xbuild ci matrix DIR EXTRA…` in the project's directory.
fn matrix_of(project: &Project, dir: &str, extra: &[&str]) -> RunOutput {
    let mut command = Xbuild::new().command();
    command
        .env_remove("XBUILD_TARGETS_DIR")
        .current_dir(project.path())
        .args(["ci", "matrix", dir])
        .args(extra);
    let output = command.output().expect("run xbuild");
    RunOutput {
        command: format!("{command:?}"),
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn with_ci(targets: &str) -> Project {
    Project::new(&format!("{IMAGE}\n[ci]\ntargets = {targets}\n"))
}

#[test]
fn github_matrix_lists_the_manifest_targets_with_their_oci_platforms() {
    let project = with_ci(r#"["aarch64-linux", "armhf", "linux/amd64"]"#);
    let output = matrix(&project, &[]);
    output.success();
    // One line, so that `echo "matrix=$(…)" >> "$GITHUB_OUTPUT"` works.
    assert_eq!(output.stdout.trim_end().lines().count(), 1, "{output}");
    assert_eq!(
        output.json(),
        json!({
            "target": ["aarch64-linux", "armv7-linux", "x86_64-linux"],
            "include": [
                {"target": "aarch64-linux", "platform": "linux/arm64/v8"},
                {"target": "armv7-linux", "platform": "linux/arm/v7"},
                {"target": "x86_64-linux", "platform": "linux/amd64"},
            ],
        })
    );
    // `--format github` is the default.
    let explicit = matrix(&project, &["--format", "github"]);
    assert_eq!(explicit.success().stdout, output.stdout);
}

#[test]
fn target_flags_replace_the_manifest_and_are_normalised_once() {
    let project = with_ci(r#"["riscv64-linux"]"#);
    let output = matrix(
        &project,
        &["--target", "arm64", "--target", "aarch64-linux"],
    );
    assert_eq!(
        output.success().json(),
        json!({
            "target": ["aarch64-linux"],
            "include": [{"target": "aarch64-linux", "platform": "linux/arm64/v8"}],
        })
    );
    // A project without [ci] takes --target alone.
    let plain = Project::new(IMAGE);
    let output = matrix(&plain, &["-t", "armv7", "-t", "s390x-linux", "-t", "armhf"]);
    assert_eq!(
        output.success().json()["target"],
        json!(["armv7-linux", "s390x-linux"])
    );
    let unknown = matrix(&plain, &["--target", "sparc"]);
    assert_eq!(unknown.status.code(), Some(2), "{unknown}");
    assert!(
        unknown.stderr.contains("unknown platform `sparc`"),
        "{unknown}"
    );
}

#[test]
fn gitlab_child_pipeline_has_one_build_job_per_target() {
    let project = with_ci(r#"["aarch64-linux", "armv7"]"#);
    let output = matrix(&project, &["--format", "gitlab"]);
    output.success();
    let document: Yaml = serde_yaml::from_str(&output.stdout)
        .unwrap_or_else(|error| panic!("not YAML ({error}):\n{output}"));
    let jobs = document.as_mapping().expect("a mapping");
    let keys: Vec<&str> = jobs.keys().map(|key| key.as_str().unwrap()).collect();
    assert_eq!(
        keys,
        ["stages", "build:aarch64-linux", "build:armv7-linux"],
        "{output}"
    );
    assert_eq!(
        document["stages"],
        serde_yaml::from_str::<Yaml>("[build]").unwrap()
    );
    for (target, platform) in [
        ("aarch64-linux", "linux/arm64/v8"),
        ("armv7-linux", "linux/arm/v7"),
    ] {
        let job = &document[format!("build:{target}").as_str()];
        assert_eq!(job["stage"], "build", "{output}");
        assert_eq!(job["variables"]["TARGET"], target, "{output}");
        assert_eq!(job["variables"]["PLATFORM"], platform, "{output}");
        let script = job["script"].as_sequence().expect("a script list");
        let expected = format!(
            "xbuild build . --target {target} --remote \"$XBUILD_REMOTE\" \
             --trust \"$XBUILD_PUBLIC_KEY\" --require-hits --push \"$IMAGE:{target}\""
        );
        assert_eq!(script, &[Yaml::String(expected)], "{output}");
    }

    // A directory that needs quoting in the shell gets it.
    let nested = "my app/it's";
    std::fs::create_dir_all(project.path().join(nested)).unwrap();
    project.write(&format!("{nested}/xbuild.toml"), IMAGE.as_bytes());
    let quoted = matrix_of(&project, nested, &["-t", "riscv64", "--format", "gitlab"]);
    let document: Yaml = serde_yaml::from_str(&quoted.success().stdout).unwrap();
    let script = document["build:riscv64-linux"]["script"][0]
        .as_str()
        .unwrap();
    assert!(
        script.starts_with("xbuild build 'my app/it'\\''s' --target riscv64-linux "),
        "{quoted}"
    );
}

#[test]
fn a_project_without_targets_is_told_how_to_name_them() {
    for manifest in [IMAGE.to_owned(), format!("{IMAGE}[ci]\ntargets = []\n")] {
        let project = Project::new(&manifest);
        let output = matrix(&project, &[]);
        output.failure();
        assert_eq!(output.status.code(), Some(2), "{output}");
        assert!(output.stdout.is_empty(), "{output}");
        assert!(
            output.stderr.contains("xbuild.toml: no targets")
                && output.stderr.contains("[ci] targets = [")
                && output.stderr.contains("--target"),
            "{output}"
        );
    }
}

#[test]
fn an_unknown_ci_target_names_the_file_and_line() {
    let project = with_ci("[\n  \"aarch64-linux\",\n  \"sparc-linux\",\n]");
    let output = matrix(&project, &[]);
    output.failure();
    assert_eq!(output.status.code(), Some(2), "{output}");
    assert!(
        output
            .stderr
            .contains("xbuild.toml:7:3: [ci] targets: unknown target `sparc-linux`"),
        "{output}"
    );
    assert!(
        output.stderr.contains("armv7-linux") && output.stderr.contains("xbuild targets"),
        "{output}"
    );
    // The same platform twice, under two names.
    let twice = matrix(&with_ci(r#"["arm64", "aarch64-linux"]"#), &[]);
    twice.failure();
    assert!(
        twice.stderr.contains("xbuild.toml:5:21: ")
            && twice
                .stderr
                .contains("`aarch64-linux` is `aarch64-linux`, already listed as `arm64`"),
        "{twice}"
    );
}

fn example(name: &str) -> Yaml {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/ci")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml::from_str(&text).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Every `run:` or `script:` line of a parsed example, joined.
fn commands(value: &Yaml) -> String {
    match value {
        Yaml::String(text) => format!("{text}\n"),
        Yaml::Sequence(items) => items.iter().map(commands).collect(),
        Yaml::Mapping(map) => map.values().map(commands).collect(),
        _ => String::new(),
    }
}

#[test]
fn the_github_example_builds_the_planned_matrix() {
    let workflow = example("github-actions.yml");
    let jobs = &workflow["jobs"];
    let plan = commands(&jobs["plan"]);
    assert!(
        plan.contains("xbuild ci matrix . --format github"),
        "{plan}"
    );
    assert_eq!(
        jobs["plan"]["outputs"]["matrix"],
        "${{ steps.matrix.outputs.matrix }}"
    );
    let build = &jobs["build"];
    assert_eq!(
        build["strategy"]["matrix"],
        "${{ fromJSON(needs.plan.outputs.matrix) }}"
    );
    let build_commands = commands(build);
    for part in [
        "--remote \"$XBUILD_REMOTE\"",
        "--trust \"$XBUILD_PUBLIC_KEY\"",
        "--require-hits",
        "--push \"$IMAGE:$TARGET\"",
    ] {
        assert!(build_commands.contains(part), "{part}: {build_commands}");
    }
    assert!(commands(&jobs["prewarm"]).contains("xbuild cache prewarm . --target"));
    assert!(commands(&jobs["prewarm"]).contains("--sign key.secret"));
    assert!(commands(&jobs["merge"]).contains("xbuild image merge \"$IMAGE:latest\""));
}

#[test]
fn the_gitlab_example_triggers_the_generated_child_pipeline() {
    let pipeline = example("gitlab-ci.yml");
    let plan = commands(&pipeline["plan"]);
    assert!(
        plan.contains("xbuild ci matrix . --format gitlab >"),
        "{plan}"
    );
    let artifact = pipeline["plan"]["artifacts"]["paths"][0].as_str().unwrap();
    let include = &pipeline["build"]["trigger"]["include"][0];
    assert_eq!(include["artifact"], artifact);
    assert_eq!(include["job"], "plan");
    assert!(commands(&pipeline["prewarm"]).contains("--sign key.secret"));
    assert!(commands(&pipeline["merge"]).contains("xbuild image merge \"$IMAGE:latest\""));
}
