// The strict YAML reader: positions, unknown and duplicate keys, scalar types.
#include "gateway/config/yaml_reader.h"

#include <gtest/gtest.h>

namespace airlock::config {
namespace {

struct Fixture {
  Diagnostics diags;
  YamlContext ctx{"t.yaml", &diags};
  YAML::Node Parse(const std::string& text) {
    auto n = ParseYamlString(text, ctx);
    EXPECT_TRUE(n) << diags.ToString();
    return n.value_or(YAML::Node());
  }
};

TEST(YamlReader, ReportsUnknownAndDuplicateKeysWithPositions) {
  Fixture f;
  YAML::Node root = f.Parse("a: 1\nb: 2\na: 3\n");
  MapReader m(root, "thing", f.ctx);
  m.Get("a");
  m.Finish();
  ASSERT_EQ(f.diags.size(), 2u) << f.diags.ToString();
  EXPECT_EQ(f.diags.ToString(),
            "t.yaml:2:1: error: unknown key 'b' in thing (known keys: a)\n"
            "t.yaml:3:1: error: duplicate key 'a' in thing\n");
}

TEST(YamlReader, MissingRequiredKeyPointsAtTheMapping) {
  Fixture f;
  YAML::Node root = f.Parse("outer:\n  x: 1\n");
  MapReader m(root["outer"], "inner", f.ctx);
  EXPECT_FALSE(m.String("name", true));
  ASSERT_EQ(f.diags.size(), 1u);
  EXPECT_EQ(f.diags.items()[0].line, 2);
  EXPECT_EQ(f.diags.items()[0].column, 3);
}

TEST(YamlReader, BooleansAreOnlyTrueAndFalse) {
  Fixture f;
  YAML::Node root = f.Parse("a: true\nb: false\nc: yes\nd: on\n");
  EXPECT_EQ(ReadBool(root["a"], f.ctx), true);
  EXPECT_EQ(ReadBool(root["b"], f.ctx), false);
  EXPECT_FALSE(ReadBool(root["c"], f.ctx));
  EXPECT_FALSE(ReadBool(root["d"], f.ctx));
  EXPECT_EQ(f.diags.size(), 2u);
}

TEST(YamlReader, IntegersAreDecimalAndInRange) {
  Fixture f;
  YAML::Node root = f.Parse("a: 42\nb: 0x10\nc: 1e3\nd: 99\ne: [1]\n");
  EXPECT_EQ(ReadInt(root["a"], 0, 100, f.ctx), 42);
  EXPECT_FALSE(ReadInt(root["b"], 0, 100, f.ctx));
  EXPECT_FALSE(ReadInt(root["c"], 0, 100000, f.ctx));
  EXPECT_FALSE(ReadInt(root["d"], 0, 50, f.ctx));
  EXPECT_FALSE(ReadInt(root["e"], 0, 50, f.ctx));
  EXPECT_EQ(f.diags.size(), 4u);
  EXPECT_NE(f.diags.items()[2].message.find("out of range [0, 50]"), std::string::npos);
}

TEST(YamlReader, SyntaxErrorsAndOddDocuments) {
  Diagnostics diags;
  YamlContext ctx("t.yaml", &diags);
  EXPECT_FALSE(ParseYamlString("a: [1, 2\n", ctx));
  EXPECT_FALSE(ParseYamlString("", ctx));
  EXPECT_FALSE(ParseYamlString("a: 1\n---\nb: 2\n", ctx));
  // yaml-cpp's LoadAll() never returns on these (tests/fuzz/corpus/config_yaml/regress-*).
  EXPECT_FALSE(ParseYamlString(",\n", ctx));
  EXPECT_FALSE(ParseYamlString(" ,a: b\n", ctx));
  ASSERT_EQ(diags.size(), 5u);
  EXPECT_GT(diags.items()[0].line, 0);
  EXPECT_NE(diags.items()[1].message.find("empty"), std::string::npos);
  EXPECT_EQ(diags.items()[2].ToString(),
            "t.yaml:2:1: error: a second YAML document starts here; exactly one is expected");
  EXPECT_EQ(diags.items()[3].ToString(),
            "t.yaml:1:1: error: YAML syntax: unexpected character at the start of a document");
  EXPECT_EQ(diags.items()[4].line, 1);
}

TEST(YamlReader, UnreadableFile) {
  Diagnostics diags;
  YamlContext ctx("/nonexistent/airlock.yaml", &diags);
  EXPECT_FALSE(ParseYamlFile(ctx));
  ASSERT_EQ(diags.size(), 1u);
  EXPECT_EQ(diags.items()[0].ToString(), "/nonexistent/airlock.yaml: error: cannot read file");
}

}  // namespace
}  // namespace airlock::config
