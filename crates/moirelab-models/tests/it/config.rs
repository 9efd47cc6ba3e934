//! `[model]` as users write it in TOML.

use moirelab_models::{Arch, InputFilter, MemoryFormat, ModelConfig};

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    model: ModelConfig,
}

fn parse(s: &str) -> Result<ModelConfig, String> {
    toml::from_str::<File>(s)
        .map(|f| f.model)
        .map_err(|e| e.to_string())
}

#[test]
fn kebab_case_keys_parse_and_missing_keys_take_defaults() {
    let cfg = parse(
        "[model]\narch = \"resnet\"\nwidth = 64\ndepth = 4\nbatch-norm = false\n\
         in-channels = 1\nblocks-per-stage = 3\n",
    )
    .unwrap();
    assert_eq!(cfg.arch, Arch::Resnet);
    assert_eq!(cfg.width, 64);
    assert_eq!(cfg.blocks_per_stage, Some(3));
    assert!(!cfg.batch_norm);
    assert_eq!(cfg.in_channels, 1);
    assert_eq!(cfg.classes, ModelConfig::default().classes);
    cfg.validate().unwrap();
}

#[test]
fn unknown_arch_in_toml_lists_valid_archs() {
    let err = parse("[model]\narch = \"densenet\"\n").unwrap_err();
    for a in Arch::ALL {
        assert!(err.contains(a.as_str()), "{err} should list {a}");
    }
    assert!(err.contains("densenet"), "{err}");
}

#[test]
fn unknown_model_key_is_rejected_by_name() {
    let err = parse("[model]\nwidht = 8\n").unwrap_err();
    assert!(err.contains("widht"), "{err}");
}

#[test]
fn serialised_config_round_trips() {
    let cfg = ModelConfig {
        arch: Arch::Vgg,
        blocks_per_stage: Some(3),
        dropout: 0.25,
        ..Default::default()
    };
    let text = toml::to_string(&cfg).unwrap();
    assert!(text.contains("blocks-per-stage = 3"), "{text}");
    let back: ModelConfig = toml::from_str(&text).unwrap();
    assert_eq!(back, cfg);
}

#[test]
fn memory_format_parses_defaults_to_auto_and_rejects_unknown_values() {
    assert_eq!(
        parse("[model]\n").unwrap().memory_format,
        MemoryFormat::Auto
    );
    for (text, want) in [
        ("auto", MemoryFormat::Auto),
        ("channels-last", MemoryFormat::ChannelsLast),
        ("contiguous", MemoryFormat::Contiguous),
    ] {
        let cfg = parse(&format!("[model]\nmemory-format = \"{text}\"\n")).unwrap();
        assert_eq!(cfg.memory_format, want, "{text}");
    }
    let err = parse("[model]\nmemory-format = \"nhwc\"\n").unwrap_err();
    assert!(
        err.contains("nhwc") && err.contains("channels-last"),
        "{err}"
    );
}

#[test]
fn auto_memory_format_is_channels_last_on_cpu_except_mobilenet_and_never_on_cuda() {
    for &arch in Arch::ALL {
        let cfg = ModelConfig {
            arch,
            ..Default::default()
        };
        assert_eq!(
            cfg.channels_last(tch::Device::Cpu),
            !matches!(arch, Arch::Mobilenet | Arch::MobilenetV3Small),
            "{arch}"
        );
        assert!(!cfg.channels_last(tch::Device::Cuda(0)), "{arch}");
        let forced = ModelConfig {
            memory_format: MemoryFormat::ChannelsLast,
            ..cfg.clone()
        };
        assert!(forced.channels_last(tch::Device::Cuda(0)), "{arch}");
        let plain = ModelConfig {
            memory_format: MemoryFormat::Contiguous,
            ..cfg
        };
        assert!(!plain.channels_last(tch::Device::Cpu), "{arch}");
    }
}

#[test]
fn auto_memory_format_is_not_written_and_an_explicit_one_round_trips() {
    let text = toml::to_string(&ModelConfig::default()).unwrap();
    assert!(!text.contains("memory-format"), "{text}");
    let cfg = ModelConfig {
        memory_format: MemoryFormat::Contiguous,
        ..Default::default()
    };
    let text = toml::to_string(&cfg).unwrap();
    assert!(text.contains("memory-format = \"contiguous\""), "{text}");
    assert_eq!(toml::from_str::<ModelConfig>(&text).unwrap(), cfg);
}

#[test]
fn input_filter_defaults_to_none_is_written_only_when_set_and_rejects_unknown_values() {
    let cfg = parse("[model]\n").unwrap();
    assert_eq!(cfg.input_filter, InputFilter::None);
    assert!(!toml::to_string(&cfg).unwrap().contains("input-filter"));
    let cfg = parse("[model]\ninput-filter = \"laplacian\"\n").unwrap();
    assert_eq!(cfg.input_filter, InputFilter::Laplacian);
    let text = toml::to_string(&cfg).unwrap();
    assert!(text.contains("input-filter = \"laplacian\""), "{text}");
    assert_eq!(toml::from_str::<ModelConfig>(&text).unwrap(), cfg);
    let err = parse("[model]\ninput-filter = \"sobel\"\n").unwrap_err();
    assert!(err.contains("sobel") && err.contains("laplacian"), "{err}");
}

#[test]
fn with_laplacian_doubles_the_first_layers_channels_and_is_refused_on_a_torchvision_stem() {
    let cfg = parse("[model]\ninput-filter = \"with-laplacian\"\n").unwrap();
    assert_eq!(cfg.input_filter, InputFilter::WithLaplacian);
    assert_eq!((cfg.in_channels, cfg.first_layer_channels()), (3, 6));
    let text = toml::to_string(&cfg).unwrap();
    assert!(text.contains("input-filter = \"with-laplacian\""), "{text}");
    assert_eq!(toml::from_str::<ModelConfig>(&text).unwrap(), cfg);
    let lap = parse("[model]\ninput-filter = \"laplacian\"\n").unwrap();
    assert_eq!(lap.first_layer_channels(), 3);
    for arch in ["resnet18", "mobilenet_v3_small"] {
        let cfg = parse(&format!("[model]\narch = \"{arch}\"\n")).unwrap();
        cfg.validate().unwrap();
        let with = ModelConfig {
            input_filter: InputFilter::WithLaplacian,
            ..cfg
        };
        let err = with.validate().unwrap_err().to_string();
        assert!(
            err.contains("with-laplacian") && err.contains(arch) && !err.contains('\n'),
            "{err}"
        );
    }
}
