// Issue 18, the command line's part: messages that name real flags and accepted values, usage
// errors that exit 2, what the user sees (the device used, "1 epoch", the checkpoint loaded),
// CSV class names through train and predict, image folders packed the same whatever the seed.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "core/tensor.h"
#include "data/image_codec.h"
#include "data/npy.h"
#include "e2e_support.h"

namespace gpuml {
namespace {

namespace fs = std::filesystem;
using testing::run_gpuml;
using testing::TempDir;

using testing::q;
using testing::read_text;

// A path as predict writes it in its "file" column (quoted only when it must be).
std::string csv_field_of(const fs::path& p) {
  const std::string text = p.string();
  return text.find_first_of(",\"\r\n") == std::string::npos ? text : "\"" + text + "\"";
}

// Iris-like rows: two features, a class name as the label; the classes are separable by a.
void write_named_csv(const fs::path& path, int rows) {
  std::ofstream out(path);
  out << "a,b,species\n";
  const char* names[] = {"setosa", "versicolor", "virginica"};
  for (int i = 0; i < rows; ++i) out << (i % 3) * 2 + 0.01 * i << "," << 0.5 - 0.01 * i << "," << names[i % 3] << "\n";
}

// A model taking `features` values and predicting `classes` classes.
void write_linear_model(const fs::path& path, int features, int classes) {
  std::ofstream(path) << fmt::format(
      R"({{"input_shape": [{}], "layers": [{{"type": "Linear", "in_features": {}, "out_features": {}}}]}})", features,
      features, classes);
}

class CliMessages : public ::testing::Test {
 protected:
  TempDir dir_;
};

// Every bad command line exits 2 and says what the flag accepts; before, --device gpu,
// --val-split 1.5, --csv-fill zero and --output pred.txt failed at run time with exit 1, a file
// as --out was "internal error: filesystem error", and --patience -1 was taken.
TEST_F(CliMessages, BadCommandLinesExitTwoNamingWhatIsAccepted) {
  fs::path file = dir_.path() / "a-file";
  std::ofstream(file) << "x";
  struct Case {
    std::string args;
    std::vector<std::string> expect;
  };
  std::vector<Case> cases = {
      {"train --device gpu", {"--device", "'gpu' is not a device", "auto, cpu, ref, cuda, cuda:N"}},
      {"eval --checkpoint x --device gpu", {"auto, cpu, ref, cuda, cuda:N"}},
      {"train --val-split 1.5", {"--val-split", "must be in [0, 1), got 1.5"}},
      {"train --csv-fill zero", {"--csv-fill", "expected 'mean' or a number"}},
      {"data pack in out --csv-fill zero", {"--csv-fill", "expected 'mean' or a number"}},
      {"predict --checkpoint x --input x --output pred.txt", {"--output", "pred.txt", ".csv or .npy"}},
      {"train --patience -1", {"--patience", "must be >= 0, got -1"}},
      {"train --out " + q(file), {"--out", "is a file, not a directory"}},
      {"train --gpu-memory-limit 512", {"--gpu-memory-limit", "'512' has no unit", "512M"}},
      {"train --data-memory-limit 512", {"--data-memory-limit", "'512' has no unit"}},
      {"train --betas 0.9", {"--betas", "BETA1,BETA2"}},
      {"train --epoch 3", {"unknown flag '--epoch' for 'gpuml train'", "did you mean '--epochs'?"}},
      {"data pack in out --shard-sise 4M", {"unknown flag '--shard-sise' for 'gpuml data pack'", "'--shard-size'"}},
      {"trian", {"unknown command 'trian'", "did you mean 'train'?"}},
  };
  for (const Case& c : cases) {
    auto r = run_gpuml(c.args);
    EXPECT_EQ(r.exit_code, 2) << c.args << "\n" << r.output;
    for (const std::string& e : c.expect) EXPECT_NE(r.output.find(e), std::string::npos) << c.args << "\n" << r.output;
  }
  auto help = run_gpuml("train --help");
  EXPECT_NE(help.output.find("(the default; GPU only)"), std::string::npos) << help.output;
  EXPECT_EQ(help.output.find("{false}"), std::string::npos) << help.output;  // read as "off by default"
  EXPECT_NE(help.output.find("--betas"), std::string::npos) << help.output;
}

// Hints name flags that exist: --momentum with adam points to --betas (it said "uses beta1");
// --betas sets Adam's betas and is recorded in the run.
TEST_F(CliMessages, BetasForAdamAndHintsThatNameFlags) {
  fs::path csv = dir_.path() / "named.csv", model = dir_.path() / "model.json";
  write_named_csv(csv, 30);
  write_linear_model(model, 2, 3);
  auto m = run_gpuml("train --quiet --optimizer adam --momentum 0.9 --data " + q(csv) + " --model " + q(model) +
                     " --out " + q(dir_.path() / "m"));
  EXPECT_EQ(m.exit_code, 1) << m.output;
  EXPECT_NE(m.output.find("--betas BETA1,BETA2"), std::string::npos) << m.output;
  auto s = run_gpuml("train --quiet --optimizer sgd --betas 0.8,0.9 --data " + q(csv) + " --model " + q(model) +
                     " --out " + q(dir_.path() / "s"));
  EXPECT_NE(s.exit_code, 0);
  EXPECT_NE(s.output.find("sgd uses --momentum"), std::string::npos) << s.output;
  fs::path run = dir_.path() / "run";
  auto t = run_gpuml("train --quiet --epochs 1 --optimizer adamw --betas 0.8,0.95 --data " + q(csv) + " --model " +
                     q(model) + " --out " + q(run));
  ASSERT_EQ(t.exit_code, 0) << t.output;
  std::string config = read_text(run / "config.json");
  EXPECT_NE(config.find("\"beta1\": 0.8"), std::string::npos) << config;
  EXPECT_NE(config.find("\"beta2\": 0.95"), std::string::npos) << config;
}

// --weight-decay-params (issue 20): a misspelt choice is a usage error naming the nearest one;
// the choice is saved in config.json and the checkpoint, printed in the header, kept by --resume,
// and cannot be changed by it.
TEST_F(CliMessages, WeightDecayParamsRoundTripsThroughTheRun) {
  fs::path csv = dir_.path() / "named.csv", model = dir_.path() / "model.json", run = dir_.path() / "run";
  write_named_csv(csv, 30);
  write_linear_model(model, 2, 3);
  const std::string data = " --data " + q(csv) + " --model " + q(model);
  auto bad = run_gpuml("train --quiet --weight-decay-params matrixes" + data + " --out " + q(dir_.path() / "bad"));
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("did you mean 'matrices'"), std::string::npos) << bad.output;
  EXPECT_NE(bad.output.find("all, matrices"), std::string::npos) << bad.output;
  EXPECT_FALSE(fs::exists(dir_.path() / "bad" / "config.json"));
  auto plain = run_gpuml("train --quiet --epochs 1" + data + " --out " + q(dir_.path() / "plain"));
  ASSERT_EQ(plain.exit_code, 0) << plain.output;
  EXPECT_NE(read_text(dir_.path() / "plain" / "config.json").find("\"weight_decay_params\": \"all\""),
            std::string::npos);
  auto t = run_gpuml("train --quiet --epochs 1 --optimizer adamw --weight-decay 0.1 --weight-decay-params matrices" +
                     data + " --out " + q(run));
  ASSERT_EQ(t.exit_code, 0) << t.output;
  EXPECT_NE(read_text(run / "config.json").find("\"weight_decay_params\": \"matrices\""), std::string::npos)
      << read_text(run / "config.json");
  auto resumed = run_gpuml("train --epochs 2 --resume " + q(run));
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("weight_decay=0.1, weight_decay_params=matrices"), std::string::npos)
      << resumed.output;
  EXPECT_NE(read_text(run / "config.json").find("\"weight_decay_params\": \"matrices\""), std::string::npos);
  auto change = run_gpuml("train --epochs 3 --weight-decay-params all --resume " + q(run));
  EXPECT_EQ(change.exit_code, 2) << change.output;
  EXPECT_NE(change.output.find("--weight-decay-params"), std::string::npos) << change.output;
}

// String class labels are mapped to ids without a flag (before: "set map_string_labels", which
// is no flag), the names are kept in the run, and predict writes them beside the ids.
TEST_F(CliMessages, CsvClassNamesGoFromTrainingToPredictions) {
  fs::path csv = dir_.path() / "named.csv", model = dir_.path() / "model.json", run = dir_.path() / "run";
  write_named_csv(csv, 60);
  write_linear_model(model, 2, 3);
  auto t = run_gpuml("train --epochs 30 --lr 0.1 --batch-size 8 --data " + q(csv) + " --model " + q(model) + " --out " + q(run));
  ASSERT_EQ(t.exit_code, 0) << t.output;
  EXPECT_NE(t.output.find("3 classes by name: setosa, versicolor, virginica"), std::string::npos) << t.output;
  EXPECT_NE(read_text(run / "config.json").find("\"class_names\""), std::string::npos);
  fs::path inputs = dir_.path() / "inputs.csv", out = dir_.path() / "pred.csv";
  std::ofstream(inputs) << "0.0,0.5\n4.0,0.1\n";
  auto p = run_gpuml("predict --checkpoint " + q(run) + " --input " + q(inputs) + " --output " + q(out));
  ASSERT_EQ(p.exit_code, 0) << p.output;
  EXPECT_NE(p.output.find("model: " + (run / "best.safetensors").string()), std::string::npos) << p.output;
  std::istringstream rows(read_text(out));
  std::string header, first, second;
  std::getline(rows, header);
  std::getline(rows, first);
  std::getline(rows, second);
  EXPECT_EQ(header, "label,class,p0,p1,p2");
  EXPECT_EQ(first.rfind("0,setosa,", 0), 0u) << first;
  EXPECT_EQ(second.rfind("2,virginica,", 0), 0u) << second;
}

// A CSV with an image preset (the default model is the cnn) gets a one-line example of a model
// file; a label-first CSV read with the default last column points to --csv-label.
TEST_F(CliMessages, CsvWithAnImagePresetOrTheLabelFirstSaysWhatToGive) {
  fs::path csv = dir_.path() / "named.csv";
  write_named_csv(csv, 30);
  auto r = run_gpuml("train --quiet --data " + q(csv) + " --out " + q(dir_.path() / "r"));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("Rows of 2 features need a model that takes them"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(R"({"input_shape": [2], "layers": [{"type": "Linear", "in_features": 2, "out_features": 3}]})"),
            std::string::npos)
      << r.output;
  fs::path first = dir_.path() / "label-first.csv";
  std::ofstream(first) << "label,p1,p2\n3,0,255\n1,17,0\n";
  auto l = run_gpuml("train --quiet --data " + q(first) + " --out " + q(dir_.path() / "l"));
  EXPECT_EQ(l.exit_code, 1) << l.output;
  EXPECT_NE(l.output.find("the first column is named 'label': give --csv-label label"), std::string::npos) << l.output;
  fs::path fractional = dir_.path() / "fractional.csv";
  std::ofstream(fractional) << "label,a\n1,0.5\n0,0.25\n";
  // With --task auto fractional labels are regression targets, and the label-first check names
  // the column; asked to classify, the fractional "label" itself is refused, naming the flag.
  auto f = run_gpuml("train --quiet --data " + q(fractional) + " --out " + q(dir_.path() / "f"));
  EXPECT_EQ(f.exit_code, 1) << f.output;
  EXPECT_NE(f.output.find("give --csv-label label"), std::string::npos) << f.output;
  auto c = run_gpuml("train --quiet --task classification --data " + q(fractional) + " --out " + q(dir_.path() / "c"));
  EXPECT_EQ(c.exit_code, 1) << c.output;
  EXPECT_NE(c.output.find("--csv-label NAME"), std::string::npos) << c.output;
}

// eval reads a CSV as the run read it (its --csv-label): before, it took the last column as the
// label whatever the run was told, and has no --csv-label of its own to be pointed to.
TEST_F(CliMessages, EvalReadsACsvWithTheRunsLabelColumn) {
  fs::path csv = dir_.path() / "label-first.csv", model = dir_.path() / "model.json", run = dir_.path() / "run";
  std::ofstream out(csv);
  out << "label,p1,p2\n";
  for (int i = 0; i < 30; ++i) out << i % 3 << "," << 100 * (i % 3) << "," << 255 - i << "\n";
  out.close();
  write_linear_model(model, 2, 3);
  auto t = run_gpuml("train --quiet --epochs 1 --csv-label label --data " + q(csv) + " --model " + q(model) +
                     " --out " + q(run));
  ASSERT_EQ(t.exit_code, 0) << t.output;
  auto e = run_gpuml("eval --checkpoint " + q(run));
  EXPECT_EQ(e.exit_code, 0) << e.output;
  // A CSV has no test split: the run held out 10% (issue 18), and eval scores those rows.
  EXPECT_NE(e.output.find("3 samples (validation split held out by the run)"), std::string::npos) << e.output;
}

// What the user sees: the device actually used, "1 epoch", a note for a flag that does not apply
// to in-memory data, and which checkpoint eval and export loaded.
TEST_F(CliMessages, HeaderNamesTheDeviceUsedAndCountsEpochsInWords) {
  fs::path csv = dir_.path() / "named.csv", model = dir_.path() / "model.json", run = dir_.path() / "run";
  write_named_csv(csv, 30);
  write_linear_model(model, 2, 3);
  auto t = run_gpuml("train --epochs 1 --data-memory-limit 64M --data " + q(csv) + " --model " + q(model) + " --out " +
                     q(run));
  ASSERT_EQ(t.exit_code, 0) << t.output;
  EXPECT_NE(t.output.find("1 epoch, batch 128, device cpu (--device auto)"), std::string::npos) << t.output;
  EXPECT_NE(t.output.find("done: 1 epoch, train acc"), std::string::npos) << t.output;
  EXPECT_NE(t.output.find("note: --data-memory-limit applies to sharded data"), std::string::npos) << t.output;
  auto e = run_gpuml("eval --checkpoint " + q(run));
  ASSERT_EQ(e.exit_code, 0) << e.output;
  EXPECT_NE(e.output.find("model: " + (run / "best.safetensors").string()), std::string::npos) << e.output;
  auto x = run_gpuml("export --checkpoint " + q(run / "last.safetensors") + " --npz " + q(dir_.path() / "w.npz"));
  ASSERT_EQ(x.exit_code, 0) << x.output;
  EXPECT_NE(x.output.find("model: " + (run / "last.safetensors").string()), std::string::npos) << x.output;
}

// Model files: a syntax error gives line and column, a misspelt field the nearest known name, a
// directory is named as one (before: "is not valid JSON" for all three).
TEST_F(CliMessages, ModelFileMistakesArePlacedAndNamed) {
  fs::path csv = dir_.path() / "named.csv";
  write_named_csv(csv, 30);
  auto train_with = [&](const fs::path& model) {
    return run_gpuml("train --quiet --data " + q(csv) + " --model " + q(model) + " --out " + q(dir_.path() / "r"));
  };
  fs::path syntax = dir_.path() / "syntax.json";
  std::ofstream(syntax) << "{\"input_shape\": [2],\n \"layers\": [\n   {\"type\": \"Linear\" \"in_features\": 2}]}\n";
  auto s = train_with(syntax);
  EXPECT_EQ(s.exit_code, 1);
  EXPECT_NE(s.output.find("syntax.json':3:"), std::string::npos) << s.output;
  fs::path misspelt = dir_.path() / "misspelt.json";
  std::ofstream(misspelt) << R"({"input_shape": [2], "layers": [{"type": "Linear", "in_feature": 2, "out_features": 3}]})";
  auto m = train_with(misspelt);
  EXPECT_NE(m.output.find("missing field 'in_features' (unknown field 'in_feature' given: did you mean 'in_features'?)"),
            std::string::npos)
      << m.output;
  fs::path extra = dir_.path() / "extra.json";  // all required fields there, an optional one misspelt
  std::ofstream(extra) << R"({"input_shape": [2], "layers": [{"type": "Linear", "in_features": 2, "out_features": 3,
      "bais": false}]})";
  auto b = train_with(extra);
  EXPECT_NE(b.output.find("unknown field 'bais' (did you mean 'bias'?)"), std::string::npos) << b.output;
  fs::create_directories(dir_.path() / "adir");
  auto d = train_with(dir_.path() / "adir");
  EXPECT_NE(d.output.find("is a directory, not a JSON or ONNX file"), std::string::npos) << d.output;
  auto p = run_gpuml("train --quiet --model cnnn --data " + q(csv) + " --out " + q(dir_.path() / "r"));
  EXPECT_NE(p.output.find("did you mean 'cnn'?"), std::string::npos) << p.output;
}

// predict tells inputs apart by their first bytes and lists what it reads (before: a PNG was
// "not an IDX file: magic starts with 89 50"); an image for a model that does not take images
// says what the model takes.
TEST_F(CliMessages, PredictRecognisesItsInputsAndListsTheFormats) {
  fs::path csv = dir_.path() / "named.csv", model = dir_.path() / "model.json", run = dir_.path() / "run";
  write_named_csv(csv, 30);
  write_linear_model(model, 2, 3);
  ASSERT_EQ(run_gpuml("train --quiet --epochs 1 --data " + q(csv) + " --model " + q(model) + " --out " + q(run)).exit_code,
            0);
  fs::path png = dir_.path() / "digit.png";
  data::write_png_file(png.string(), data::Image{2, 1, 1, {1, 2}});
  auto r = run_gpuml("predict --checkpoint " + q(run) + " --input " + q(png) + " --output " + q(dir_.path() / "p.csv"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("images become (C, H, W) samples with C 1 (gray) or 3 (RGB), but the model takes samples "
                          "of shape (2,)"),
            std::string::npos)
      << r.output;
  fs::path junk = dir_.path() / "inputs.bin";
  std::ofstream(junk) << "hello";
  auto j = run_gpuml("predict --checkpoint " + q(run) + " --input " + q(junk) + " --output " + q(dir_.path() / "p.csv"));
  EXPECT_NE(j.output.find("not a format predict recognises"), std::string::npos) << j.output;
  EXPECT_NE(j.output.find("predict reads IDX images (raw or .gz), PNG or JPEG images (a file, or a directory of "
                          ".png/.jpg/.jpeg files), a .csv of feature rows, an .npy array, or an .npz"),
            std::string::npos)
      << j.output;
  auto d = run_gpuml("predict --checkpoint " + q(run) + " --input " + q(run) + " --output " +
                     q(dir_.path() / "p.csv"));
  EXPECT_EQ(d.exit_code, 1);
  EXPECT_NE(d.output.find("is a directory without .png/.jpg/.jpeg files; predict reads"), std::string::npos) << d.output;
  EXPECT_FALSE(fs::exists(dir_.path() / "p.csv"));
}

// `data pack` takes --csv-fill (before: no such flag; the error said "set a fill policy").
TEST_F(CliMessages, PackFillsMissingCsvValuesWithCsvFill) {
  fs::path csv = dir_.path() / "gaps.csv";
  std::ofstream(csv) << "a,b,label\n1,,0\n2,3,1\n";
  auto bad = run_gpuml("data pack --quiet " + q(csv) + " " + q(dir_.path() / "bad"));
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.output.find("--csv-fill mean or --csv-fill NUMBER"), std::string::npos) << bad.output;
  auto ok = run_gpuml("data pack --quiet --csv-fill 0 " + q(csv) + " " + q(dir_.path() / "ok"));
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  auto mean = run_gpuml("data pack --quiet --csv-fill mean " + q(csv) + " " + q(dir_.path() / "mean"));
  EXPECT_EQ(mean.exit_code, 1);
  EXPECT_NE(mean.output.find("give --csv-fill NUMBER"), std::string::npos) << mean.output;
}

// An image folder packs to the most common shape, says what it converted and skipped, and its
// class names reach the predictions of a model trained on the pack.
TEST_F(CliMessages, ImageFolderClassNamesReachPredict) {
  fs::path root = dir_.path() / "imgs";
  for (int c = 0; c < 2; ++c) {
    const char* name = c == 0 ? "cat" : "dog";
    fs::create_directories(root / name);
    for (int i = 0; i < 4; ++i)
      data::write_png_file((root / name / fmt::format("{}.png", i)).string(),
                           data::Image{4, 4, 3, std::vector<uint8_t>(48, static_cast<uint8_t>(c == 0 ? 10 : 240))});
  }
  data::write_png_file((root / "dog" / "big.png").string(), data::Image{6, 5, 1, std::vector<uint8_t>(30, 200)});
  std::ofstream(root / "cat" / "README") << "x";
  fs::path shards = dir_.path() / "shards", model = dir_.path() / "model.json", run = dir_.path() / "run";
  auto p = run_gpuml("data pack --quiet --seed 1 " + q(root) + " " + q(shards));
  ASSERT_EQ(p.exit_code, 0) << p.output;
  EXPECT_NE(p.output.find("image size 4x4: the most common, 8 of 9 images"), std::string::npos) << p.output;
  EXPECT_NE(p.output.find("skipped 1 files"), std::string::npos) << p.output;
  EXPECT_NE(read_text(shards / "manifest.json").find("\"class_names\""), std::string::npos);
  std::ofstream(model) << R"({"input_shape": [3, 4, 4], "layers": [{"type": "Flatten"},
      {"type": "Linear", "in_features": 48, "out_features": 2}]})";
  auto t = run_gpuml("train --quiet --epochs 30 --lr 0.05 --batch-size 4 --data " + q(shards) + " --model " + q(model) +
                     " --out " + q(run));
  ASSERT_EQ(t.exit_code, 0) << t.output;
  std::vector<double> pixels(96);
  for (size_t i = 48; i < 96; ++i) pixels[i] = 240;
  for (size_t i = 0; i < 48; ++i) pixels[i] = 10;
  data::write_npy((dir_.path() / "x.npy").string(), Tensor::from_values({2, 3, 4, 4}, pixels, DType::u8));
  fs::path out = dir_.path() / "pred.csv";
  auto r = run_gpuml("predict --checkpoint " + q(run) + " --input " + q(dir_.path() / "x.npy") + " --output " + q(out));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string text = read_text(out);
  EXPECT_EQ(text.rfind("label,class,p0,p1\n0,cat,", 0), 0u) << text;
  EXPECT_NE(text.find("\n1,dog,"), std::string::npos) << text;

  // The same pixels as PNG files (a directory, in name order) give the same probabilities: the
  // images get the preprocessing the pack gave the training images. A gray 8x8 image is made RGB
  // 4x4 as the pack would; a JPEG file is read alone; other files are skipped.
  fs::path images = dir_.path() / "to-predict";
  fs::create_directories(images);
  data::write_png_file((images / "a.png").string(), data::Image{4, 4, 3, std::vector<uint8_t>(48, 10)});
  data::write_png_file((images / "b.png").string(), data::Image{4, 4, 3, std::vector<uint8_t>(48, 240)});
  data::write_png_file((images / "c.png").string(), data::Image{8, 8, 1, std::vector<uint8_t>(64, 240)});
  std::ofstream(images / "notes.txt") << "not an image";
  fs::path from_images = dir_.path() / "images.csv";
  auto i = run_gpuml("predict --checkpoint " + q(run) + " --input " + q(images) + " --output " + q(from_images));
  ASSERT_EQ(i.exit_code, 0) << i.output;
  EXPECT_NE(i.output.find("1 image resized to 4x4, 1 image converted to RGB, 1 other entries skipped"),
            std::string::npos)
      << i.output;
  std::istringstream npy_rows(text), image_rows(read_text(from_images));
  std::string header, cat, dog, a, b, c;
  std::getline(npy_rows, header);
  std::getline(npy_rows, cat);
  std::getline(npy_rows, dog);
  std::getline(image_rows, header);
  std::getline(image_rows, a);
  std::getline(image_rows, b);
  std::getline(image_rows, c);
  EXPECT_EQ(header, "file,label,class,p0,p1");
  EXPECT_EQ(a, csv_field_of(images / "a.png") + "," + cat);
  EXPECT_EQ(b, csv_field_of(images / "b.png") + "," + dog);
  EXPECT_EQ(c, csv_field_of(images / "c.png") + "," + dog);
  fs::path jpeg = dir_.path() / "dog.jpg";
  data::write_jpeg_file(jpeg.string(), data::Image{4, 4, 3, std::vector<uint8_t>(48, 240)});
  auto j = run_gpuml("predict --checkpoint " + q(run) + " --input " + q(jpeg) + " --output " + q(dir_.path() / "j.csv"));
  ASSERT_EQ(j.exit_code, 0) << j.output;
  EXPECT_NE(read_text(dir_.path() / "j.csv").find(jpeg.string() + ",1,dog,"), std::string::npos)
      << read_text(dir_.path() / "j.csv");
}

// Item 5: a NaN stop before any checkpoint must not name one (it said "The last good checkpoint
// is in RUN" when RUN held none).
TEST_F(CliMessages, NanStopBeforeAnyCheckpointSaysNoneWasWritten) {
  fs::path csv = dir_.path() / "named.csv", model = dir_.path() / "model.json", run = dir_.path() / "run";
  write_named_csv(csv, 30);
  write_linear_model(model, 2, 3);
  auto t = run_gpuml("train --quiet --optimizer sgd --lr 1e38 --batch-size 2 --data " + q(csv) + " --model " + q(model) +
                     " --out " + q(run));
  EXPECT_EQ(t.exit_code, 1) << t.output;
  EXPECT_NE(t.output.find("the loss became"), std::string::npos) << t.output;
  EXPECT_NE(t.output.find("No checkpoint was written before it"), std::string::npos) << t.output;
  EXPECT_FALSE(fs::exists(run / "last.safetensors"));
}

}  // namespace
}  // namespace gpuml
