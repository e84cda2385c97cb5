// The ONNX importer treats files as hostile: hand-made protobuf bytes (io/proto_writer.h, field
// numbers from onnx.proto) that are truncated, mistyped, dangling, huge or escaping the model's
// directory are rejected with a gpuml::Error that says what is wrong, never a crash.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <random>

#include "core/atomic_file.h"
#include "core/error.h"
#include "interop/onnx_import.h"
#include "io/proto_writer.h"
#include "io_temp_dir.h"

namespace gpuml {
namespace {

using testing::TempDir;
namespace fs = std::filesystem;

constexpr int kFloat = 1, kInt64 = 7, kString = 8;

ProtoWriter dim_value(int64_t v) { ProtoWriter d; d.add_int64(1, v); return d; }
ProtoWriter dim_param(const std::string& p) { ProtoWriter d; d.add_string(2, p); return d; }

ProtoWriter value_info(const std::string& name, int elem_type, const std::vector<ProtoWriter>& dims) {
  ProtoWriter shape;
  for (const ProtoWriter& d : dims) shape.add_message(1, d);
  ProtoWriter tensor;
  tensor.add_int64(1, elem_type);
  tensor.add_message(2, shape);
  ProtoWriter type;
  type.add_message(1, tensor);
  ProtoWriter info;
  info.add_string(1, name);
  info.add_message(2, type);
  return info;
}

struct TensorSpec {
  std::string name;
  std::vector<int64_t> dims;
  std::vector<float> values;
  int data_type = kFloat;
  std::string external;  // location of external data, if any
};

ProtoWriter tensor(const TensorSpec& t) {
  ProtoWriter p;
  for (int64_t d : t.dims) p.add_int64(1, d);
  p.add_int64(2, t.data_type);
  p.add_string(8, t.name);
  if (t.external.empty()) {
    p.add_bytes(9, std::string_view(reinterpret_cast<const char*>(t.values.data()), t.values.size() * 4));
  } else {
    ProtoWriter entry;
    entry.add_string(1, "location");
    entry.add_string(2, t.external);
    p.add_message(13, entry);
    p.add_int64(14, 1);  // EXTERNAL
  }
  return p;
}

struct NodeSpec {
  std::string op;
  std::vector<std::string> inputs, outputs;
  std::vector<ProtoWriter> attributes;
};

ProtoWriter int_attr(const std::string& name, int64_t v) {
  ProtoWriter a;
  a.add_string(1, name);
  a.add_int64(3, v);
  a.add_int64(20, 2);  // INT
  return a;
}

ProtoWriter node(const NodeSpec& n) {
  ProtoWriter p;
  for (const std::string& i : n.inputs) p.add_string(1, i);
  for (const std::string& o : n.outputs) p.add_string(2, o);
  p.add_string(3, n.op + "_node");
  p.add_string(4, n.op);
  for (const ProtoWriter& a : n.attributes) p.add_message(5, a);
  return p;
}

// A Linear(4 -> 3): Gemm(x, W, b, transB=1) -> logits. Each part can be replaced by a test.
struct ModelSpec {
  std::vector<NodeSpec> nodes = {{"Gemm", {"x", "W", "b"}, {"logits"}, {int_attr("transB", 1)}}};
  std::vector<TensorSpec> initializers = {{"W", {3, 4}, std::vector<float>(12, 0.5f), kFloat, ""},
                                          {"b", {3}, {0.1f, 0.2f, 0.3f}, kFloat, ""}};
  int input_type = kFloat;
  int64_t opset = 17;
  std::vector<ProtoWriter> input_dims() const { return {dim_param("batch"), dim_value(4)}; }

  std::string bytes() const {
    ProtoWriter g;
    for (const NodeSpec& n : nodes) g.add_message(1, node(n));
    g.add_string(2, "test");
    for (const TensorSpec& t : initializers) g.add_message(5, tensor(t));
    g.add_message(11, value_info("x", input_type, input_dims()));
    g.add_message(12, value_info("logits", kFloat, {dim_param("batch"), dim_value(3)}));
    ProtoWriter opset_id;
    opset_id.add_string(1, "");
    opset_id.add_int64(2, opset);
    ProtoWriter m;
    m.add_int64(1, 8);
    m.add_string(2, "handmade");
    m.add_message(7, g);
    m.add_message(8, opset_id);
    return m.bytes();
  }
};

// The error message, or "" if the import succeeded.
std::string import_error(const std::string& bytes, const fs::path& dir = {}) {
  try {
    interop::import_onnx_bytes(bytes, dir, "test.onnx");
  } catch (const Error& e) {
    return e.message();
  }
  return "";
}

#define EXPECT_REJECTED(bytes, fragment)                                   \
  do {                                                                     \
    std::string message = import_error(bytes);                             \
    EXPECT_NE(message.find(fragment), std::string::npos) << "got: '" << message << "'"; \
  } while (0)

TEST(OnnxImportMalformed, TheHandMadeModelImports) {
  interop::ImportedModel m = interop::import_onnx_bytes(ModelSpec{}.bytes(), {}, "test.onnx");
  EXPECT_EQ(m.model.input_shape(), (Shape{4}));
  EXPECT_EQ(m.model.output_shape(), (Shape{3}));
  ASSERT_EQ(m.weights.size(), 2u);
  EXPECT_EQ(m.weights[0].second.shape(), (Shape{3, 4}));
  EXPECT_EQ(m.weights[1].second.to_doubles()[2], static_cast<double>(0.3f));
}

TEST(OnnxImportMalformed, EveryTruncationIsRejected) {
  std::string bytes = ModelSpec{}.bytes();
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::string message = import_error(bytes.substr(0, n));
    EXPECT_FALSE(message.empty()) << "a prefix of " << n << " of " << bytes.size() << " bytes imported";
  }
}

TEST(OnnxImportMalformed, RandomByteCorruptionNeverCrashes) {
  std::string bytes = ModelSpec{}.bytes();
  std::mt19937_64 rng(std::random_device{}());
  int rejected = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string b = bytes;
    for (int k = 0; k < 3; ++k) b[rng() % b.size()] = static_cast<char>(rng());
    rejected += !import_error(b).empty();  // either imports or throws gpuml::Error
  }
  EXPECT_GT(rejected, 0);
}

TEST(OnnxImportMalformed, WrongTypesAreNamed) {
  ModelSpec strings;
  strings.initializers[0].data_type = kString;
  EXPECT_REJECTED(strings.bytes(), "element type STRING is not supported");

  ModelSpec int_input;
  int_input.input_type = kInt64;
  EXPECT_REJECTED(int_input.bytes(), "must be float32");

  ModelSpec float_attr;
  ProtoWriter a;
  a.add_string(1, "transB");
  a.add_float(2, 1.0f);
  a.add_int64(20, 1);  // FLOAT
  float_attr.nodes[0].attributes = {a};
  EXPECT_REJECTED(float_attr.bytes(), "attribute 'transB' has type FLOAT, expected INT");

  ModelSpec old_opset;
  old_opset.opset = 5;
  EXPECT_REJECTED(old_opset.bytes(), "opset 5 is not supported");
}

TEST(OnnxImportMalformed, DanglingAndRedefinedValuesAreNamed) {
  ModelSpec dangling;
  dangling.nodes[0].inputs[1] = "nowhere";
  EXPECT_REJECTED(dangling.bytes(), "uses 'nowhere', which no earlier node, initializer or input defines");

  ModelSpec redefined;
  redefined.nodes.push_back({"Relu", {"logits"}, {"logits"}, {}});
  EXPECT_REJECTED(redefined.bytes(), "redefines 'logits'");

  ModelSpec no_output;
  no_output.nodes[0].outputs = {"other"};
  EXPECT_REJECTED(no_output.bytes(), "output 'logits' is not computed from the input");
}

TEST(OnnxImportMalformed, HugeOrInconsistentDimsAreRejectedBeforeAllocating) {
  ModelSpec huge;
  huge.initializers[0].dims = {int64_t{1} << 40, int64_t{1} << 40};
  EXPECT_REJECTED(huge.bytes(), "are too large");

  ModelSpec overflow;
  overflow.initializers[0].dims = {int64_t{1} << 62, 8, 8};
  EXPECT_REJECTED(overflow.bytes(), "are too large");

  ModelSpec negative;
  negative.initializers[0].dims = {-3, 4};
  EXPECT_REJECTED(negative.bytes(), "negative dimension -3");

  ModelSpec short_data;
  short_data.initializers[0].values.resize(11);
  EXPECT_REJECTED(short_data.bytes(), "raw_data holds 44 bytes, its dims (3, 4) need 48");

  ModelSpec shape_mismatch;
  shape_mismatch.initializers[0].dims = {3, 5};
  shape_mismatch.initializers[0].values.resize(15);
  EXPECT_FALSE(import_error(shape_mismatch.bytes()).empty());
}

TEST(OnnxImportMalformed, ExternalDataMustStayInsideTheModelDirectory) {
  TempDir dir;
  fs::create_directories(dir.path() / "model");
  std::vector<float> w(12, 0.25f);
  write_file_atomically(dir.path() / "model" / "w.bin", std::string_view(reinterpret_cast<const char*>(w.data()), 48));
  write_file_atomically(dir.path() / "secret.bin", std::string_view(reinterpret_cast<const char*>(w.data()), 48));
  fs::create_symlink(dir.path() / "secret.bin", dir.path() / "model" / "link.bin");
  auto with_location = [](const std::string& location) {
    ModelSpec m;
    m.initializers[0].external = location;
    return m.bytes();
  };
  fs::path model_dir = dir.path() / "model";
  EXPECT_EQ(import_error(with_location("w.bin"), model_dir), "");  // inside: fine
  EXPECT_NE(import_error(with_location("../secret.bin"), model_dir).find("leaves the model's directory"),
            std::string::npos);
  EXPECT_NE(import_error(with_location("sub/../../secret.bin"), model_dir).find("leaves the model's directory"),
            std::string::npos);
  EXPECT_NE(import_error(with_location((dir.path() / "secret.bin").string()), model_dir).find("must be a relative path"),
            std::string::npos);
  EXPECT_NE(import_error(with_location("link.bin"), model_dir).find("resolves outside the model's directory"),
            std::string::npos);
  EXPECT_NE(import_error(with_location("missing.bin"), model_dir).find("not readable"), std::string::npos);
  EXPECT_NE(import_error(with_location("w.bin"), {}).find("is not allowed here"), std::string::npos);
}

TEST(OnnxImportMalformed, AllUnsupportedOpsAreListedInOneError) {
  ModelSpec m;
  m.nodes.push_back({"LSTM", {"logits"}, {"h"}, {}});
  m.nodes.push_back({"Resize", {"h"}, {"r"}, {}});
  m.nodes.push_back({"LSTM", {"r"}, {"h2"}, {}});
  std::string message = import_error(m.bytes());
  EXPECT_NE(message.find("unsupported ONNX operators: LSTM (2 nodes: LSTM 'LSTM_node', LSTM 'LSTM_node'); "
                         "Resize (1 node: Resize 'Resize_node')"),
            std::string::npos)
      << message;
}

TEST(OnnxImportMalformed, ResidualAddImportsAsAnAddLayerAndBadMergesAreNamed) {
  ModelSpec m;  // logits = Gemm(x) + x: a residual merge of the input and a layer's output
  m.nodes[0].outputs = {"y"};
  m.initializers[0].dims = {4, 4};
  m.initializers[0].values.resize(16);
  m.initializers[1].dims = {4};
  m.initializers[1].values.resize(4);
  m.nodes.push_back({"Add", {"y", "x"}, {"logits"}, {}});
  interop::ImportedModel imported = interop::import_onnx_bytes(m.bytes(), {}, "test.onnx");
  const nlohmann::json layers = imported.model.to_json()["layers"];
  ASSERT_EQ(layers.size(), 2u) << layers.dump();
  EXPECT_EQ(layers[1]["type"], "Add");
  EXPECT_EQ(layers[1]["inputs"], (nlohmann::json{"0", "input"})) << layers.dump();

  ModelSpec constant = m;  // Gemm(x) + W: a constant is no merge input (and no bias of a Gemm)
  constant.nodes[1].inputs = {"y", "b"};
  EXPECT_REJECTED(constant.bytes(), "cannot be expressed as a gpuml layer");
  ModelSpec shapes;  // Gemm(x) (3 features) + x (4 features): gpuml's Add wants one shape
  shapes.nodes[0].outputs = {"y"};
  shapes.nodes.push_back({"Add", {"y", "x"}, {"logits"}, {}});
  EXPECT_REJECTED(shapes.bytes(), "the imported layers do not fit together");
  ModelSpec batch = m;  // a Concat along the batch axis
  batch.nodes[1] = {"Concat", {"y", "x"}, {"logits"}, {int_attr("axis", 0)}};
  EXPECT_REJECTED(batch.bytes(), "a Concat along the batch axis is not a gpuml layer");
  ModelSpec dead_end = m;  // the output is a side branch: not the last layer's output
  dead_end.nodes[1].outputs = {"z"};
  dead_end.nodes.push_back({"Relu", {"y"}, {"logits"}, {}});
  dead_end.nodes.push_back({"Relu", {"z"}, {"unused"}, {}});
  EXPECT_EQ(import_error(dead_end.bytes()), "");  // nodes the output does not need are dropped
}

TEST(OnnxImportMalformed, NotProtobufAtAll) {
  EXPECT_REJECTED(std::string("this is not an onnx file"), "not a valid ONNX model");
  EXPECT_REJECTED(std::string(), "has no graph nodes");  // empty bytes parse as an empty ModelProto
}

}  // namespace
}  // namespace gpuml
