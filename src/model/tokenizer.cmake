# Tokenizers (SentencePiece-style and byte-level BPE). Included from src/model/CMakeLists.txt.
# The pre-tokenizer expressions need Unicode properties (\p{L}, \p{N}): PCRE2 (libpcre2-dev).
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)

add_library(dualblade_tokenizer STATIC
  ${CMAKE_CURRENT_LIST_DIR}/unicode.cc
  ${CMAKE_CURRENT_LIST_DIR}/pretokenizer.cc
  ${CMAKE_CURRENT_LIST_DIR}/vocab.cc
  ${CMAKE_CURRENT_LIST_DIR}/tokenizer.cc
  ${CMAKE_CURRENT_LIST_DIR}/tokenizer_spm.cc
  ${CMAKE_CURRENT_LIST_DIR}/tokenizer_bpe.cc
)
target_link_libraries(dualblade_tokenizer PUBLIC dualblade_model dualblade_common
                                          PRIVATE PkgConfig::PCRE2)

dualblade_test(tokenizer_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/unicode_test.cc
          ${CMAKE_CURRENT_LIST_DIR}/pretokenizer_test.cc
          ${CMAKE_CURRENT_LIST_DIR}/tokenizer_test.cc
          ${CMAKE_CURRENT_LIST_DIR}/vocab_test.cc
          ${CMAKE_CURRENT_LIST_DIR}/tokenizer_golden_test.cc
  LIBS dualblade_tokenizer dualblade_testing nlohmann_json::nlohmann_json)
