// Assertions on xlb::Result and xlb::Status that print the error's message when they fail.
#pragma once

#include <gtest/gtest.h>

#define XLB_ASSERT_OK(expr)                                                              \
  do {                                                                                   \
    const auto& xlb_outcome_ = (expr);                                                   \
    ASSERT_TRUE(xlb_outcome_.ok()) << #expr << ": " << xlb_outcome_.error().message;     \
  } while (false)

#define XLB_EXPECT_OK(expr)                                                              \
  do {                                                                                   \
    const auto& xlb_outcome_ = (expr);                                                   \
    EXPECT_TRUE(xlb_outcome_.ok()) << #expr << ": " << xlb_outcome_.error().message;     \
  } while (false)
