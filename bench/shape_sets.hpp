// The benchmark shape sets: the one list of layer shapes that convkit is measured on (STYLE rule
// 9).
//
// Every shape here is benchmarked by bench/convkit_bench.cpp over every op and backend, and the
// equivalence tests include this header so that every benchmark shape is also an equivalence case.
// Pure data plus the convkit headers: no Google Benchmark, no library calls, nothing to link.
//
// Conventions: x is NHWC {N, H, W, C_in} with N the default batch; weights are HWIO
// {KH, KW, C_in / groups, C_out}. Pooling shapes carry PoolMode::kMax; the pooling benchmarks set
// the mode per op (and drop count_include_pad, an average-only flag, for max pooling).
//
// Conv sets: "seeds" (the assignment's conv_forward cases), "resnet50" (the distinct conv layers of
// ResNet-50 v1.5 at 224x224, stride in the 3x3), "vgg16" (the distinct conv layers of VGG-16),
// "mobilenet" (MobileNet v1: the 3x3 depthwise layers and their 1x1 pointwise partners), "odd"
// (channel counts and sizes around the vector width, primes, dilation, asymmetric padding, groups),
// and the layer classes of issue 16 (each shape cites its model and layer, at 224x224 input):
// "grouped" (ResNeXt-50 32x4d and RegNetY-400MF group convolutions), "stems" (1-3 input channels:
// 3x3/2, 7x7/2, patchify 4x4/4 and 16x16/16, at batch 1 and 8), "dw_large" (5x5 and 7x7
// depthwise at every stage size, stride 1 and 2), "narrow_1x1" (pointwise layers with 16-72
// channels), "dilated" (DeepLabv3's atrous layers: ResNet-50 and MobileNetV3 backbones, ASPP),
// "strided" (stride-2 downsampling layers of ResNet-18, YOLOv5s, HRNet, SSD and pix2pix),
// "factorized" (1xK and Kx1 kernels with "same" padding: Inception-v3's 17x17 and 8x8 blocks at
// 299x299, ERFNet's non-bottleneck-1D blocks, dilated along the kernel's axis, at 256x512).
// Pooling at batch 32 and backward at batch 8 are the same sets at another batch:
// tools/convkit_compare.py --batch pool2d=32,conv2d_bwd=8.
// Transposed-convolution set: "transposed" (upsampling layers of UNet decoders, the DBNet head,
// DCGAN generators, the Simple Baselines / CenterNet deconvolution head, LinkNet decoders and
// DeconvNet; w is {KH, KW, C_out / groups, C_in}).
// Pool set: "pooling" (the assignment's pool cases, the network pools, small in-cache ones with
// padding and ceil_mode).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "convkit/params.hpp"
#include "convkit/tensor.hpp"

namespace convkit::bench {

struct ConvShape {
  std::string_view set;   // "resnet50"
  std::string_view name;  // "res3_3x3s2_128", unique within its set; no '/'
  Dims x;                 // {N, H, W, C_in}; N is the default batch
  Conv2dParams params;
  int64_t c_out = 0;

  int64_t default_batch() const { return x[0]; }
  Dims x_dims(int64_t batch) const { return {batch, x[1], x[2], x[3]}; }
  Dims w_dims() const { return {params.kernel_h, params.kernel_w, x[3] / params.groups, c_out}; }
};

struct TransposeShape {
  std::string_view set;   // "transposed"
  std::string_view name;  // "unet256_up1_k2s2_1024"
  Dims x;                 // {N, H, W, C_in}; N is the default batch
  Conv2dTransposeParams params;
  int64_t c_out = 0;

  int64_t default_batch() const { return x[0]; }
  Dims x_dims(int64_t batch) const { return {batch, x[1], x[2], x[3]}; }
  Dims w_dims() const { return {params.kernel_h, params.kernel_w, c_out / params.groups, x[3]}; }
};

struct PoolShape {
  std::string_view set;   // "pooling"
  std::string_view name;  // "resnet50_maxpool"; (name, default batch) is unique within its set
  Dims x;                 // {N, H, W, C}; N is the default batch
  Pool2dParams params;    // mode kMax; the benchmarks choose the mode

  int64_t default_batch() const { return x[0]; }
  Dims x_dims(int64_t batch) const { return {batch, x[1], x[2], x[3]}; }
};

namespace internal {

// A square kernel k x k with stride s, uniform padding p, groups g and dilation d.
constexpr ConvShape Conv(std::string_view set, std::string_view name, int64_t n, int64_t h,
                         int64_t w, int64_t c_in, int64_t c_out, int64_t k, int64_t s, int64_t p,
                         int64_t g = 1, int64_t d = 1) {
  Conv2dParams params;
  params.kernel_h = params.kernel_w = k;
  params.stride_h = params.stride_w = s;
  params.pad = Pads{p, p, p, p};
  params.dilation_h = params.dilation_w = d;
  params.groups = g;
  return {set, name, Dims{n, h, w, c_in}, params, c_out};
}

// A 3x3 depthwise convolution (groups == C_in == C_out), padding 1.
constexpr ConvShape Depthwise(std::string_view name, int64_t n, int64_t h, int64_t c, int64_t s) {
  return Conv("mobilenet", name, n, h, h, c, c, 3, s, 1, c);
}

// A k x k depthwise convolution with "same" padding k / 2 on an h x h input.
constexpr ConvShape DepthwiseK(std::string_view name, int64_t h, int64_t c, int64_t k, int64_t s) {
  return Conv("dw_large", name, 1, h, h, c, c, k, s, k / 2, c);
}

// A kh x kw convolution, one of them 1, with "same" padding, dilated by d along the kernel's axis,
// on an h x w input (the "factorized" set).
constexpr ConvShape Factorized(std::string_view name, int64_t h, int64_t w, int64_t c_in,
                               int64_t c_out, int64_t kh, int64_t kw, int64_t d = 1) {
  Conv2dParams params;
  params.kernel_h = kh;
  params.kernel_w = kw;
  params.dilation_h = kh > 1 ? d : 1;
  params.dilation_w = kw > 1 ? d : 1;
  params.pad = Pads{kh / 2 * params.dilation_h, kh / 2 * params.dilation_h,
                    kw / 2 * params.dilation_w, kw / 2 * params.dilation_w};
  return {"factorized", name, Dims{1, h, w, c_in}, params, c_out};
}

// A 3x3 group convolution (padding 1) with c channels in and out in groups of c / g.
constexpr ConvShape Grouped(std::string_view name, int64_t h, int64_t c, int64_t g, int64_t s) {
  return Conv("grouped", name, 1, h, h, c, c, 3, s, 1, g);
}

// A 1x1 convolution, stride 1, on an h x h input.
constexpr ConvShape Pointwise(std::string_view name, int64_t h, int64_t c_in, int64_t c_out) {
  return Conv("narrow_1x1", name, 1, h, h, c_in, c_out, 1, 1, 0);
}

// A window k x k with stride s and uniform padding p.
constexpr PoolShape Pool(std::string_view name, int64_t n, int64_t h, int64_t w, int64_t c,
                         int64_t k, int64_t s, int64_t p, bool ceil_mode = false,
                         bool count_include_pad = false) {
  Pool2dParams params;
  params.window_h = params.window_w = k;
  params.stride_h = params.stride_w = s;
  params.pad = Pads{p, p, p, p};
  params.ceil_mode = ceil_mode;
  params.count_include_pad = count_include_pad;
  return {"pooling", name, Dims{n, h, w, c}, params};
}

constexpr PoolShape GlobalPool(std::string_view name, int64_t n, int64_t h, int64_t c) {
  Pool2dParams params;
  params.global = true;
  return {"pooling", name, Dims{n, h, h, c}, params};
}

// A square transposed kernel k x k with stride s, uniform crop p and output_padding op.
constexpr TransposeShape Transpose(std::string_view name, int64_t n, int64_t h, int64_t w,
                                   int64_t c_in, int64_t c_out, int64_t k, int64_t s, int64_t p,
                                   int64_t op = 0) {
  Conv2dTransposeParams params;
  params.kernel_h = params.kernel_w = k;
  params.stride_h = params.stride_w = s;
  params.pad = Pads{p, p, p, p};
  params.output_padding_h = params.output_padding_w = op;
  return {"transposed", name, Dims{n, h, w, c_in}, params, c_out};
}

constexpr ConvShape WithPads(ConvShape shape, Pads pad) {
  shape.params.pad = pad;
  return shape;
}

inline constexpr ConvShape kConvShapes[] = {
    // The assignment's conv_forward examples.
    Conv("seeds", "conv_5x7x4_8_k3s2p1", 2, 5, 7, 4, 8, 3, 2, 1),
    Conv("seeds", "conv_4x4x3_8_k2s2p2", 10, 4, 4, 3, 8, 2, 2, 2),

    // ResNet-50 v1.5: conv1, then per stage the first block (1x1 reduce, 3x3 with the stride,
    // 1x1 expand, strided 1x1 projection) and the repeated block (1x1 reduce, 3x3).
    Conv("resnet50", "conv1_7x7s2", 1, 224, 224, 3, 64, 7, 2, 3),
    Conv("resnet50", "res2_1x1_64_64", 1, 56, 56, 64, 64, 1, 1, 0),
    Conv("resnet50", "res2_3x3_64", 1, 56, 56, 64, 64, 3, 1, 1),
    Conv("resnet50", "res2_1x1_64_256", 1, 56, 56, 64, 256, 1, 1, 0),
    Conv("resnet50", "res2_1x1_256_64", 1, 56, 56, 256, 64, 1, 1, 0),
    Conv("resnet50", "res3_1x1_256_128", 1, 56, 56, 256, 128, 1, 1, 0),
    Conv("resnet50", "res3_3x3s2_128", 1, 56, 56, 128, 128, 3, 2, 1),
    Conv("resnet50", "res3_1x1_128_512", 1, 28, 28, 128, 512, 1, 1, 0),
    Conv("resnet50", "res3_proj_1x1s2_256_512", 1, 56, 56, 256, 512, 1, 2, 0),
    Conv("resnet50", "res3_1x1_512_128", 1, 28, 28, 512, 128, 1, 1, 0),
    Conv("resnet50", "res3_3x3_128", 1, 28, 28, 128, 128, 3, 1, 1),
    Conv("resnet50", "res4_1x1_512_256", 1, 28, 28, 512, 256, 1, 1, 0),
    Conv("resnet50", "res4_3x3s2_256", 1, 28, 28, 256, 256, 3, 2, 1),
    Conv("resnet50", "res4_1x1_256_1024", 1, 14, 14, 256, 1024, 1, 1, 0),
    Conv("resnet50", "res4_proj_1x1s2_512_1024", 1, 28, 28, 512, 1024, 1, 2, 0),
    Conv("resnet50", "res4_1x1_1024_256", 1, 14, 14, 1024, 256, 1, 1, 0),
    Conv("resnet50", "res4_3x3_256", 1, 14, 14, 256, 256, 3, 1, 1),
    Conv("resnet50", "res5_1x1_1024_512", 1, 14, 14, 1024, 512, 1, 1, 0),
    Conv("resnet50", "res5_3x3s2_512", 1, 14, 14, 512, 512, 3, 2, 1),
    Conv("resnet50", "res5_1x1_512_2048", 1, 7, 7, 512, 2048, 1, 1, 0),
    Conv("resnet50", "res5_proj_1x1s2_1024_2048", 1, 14, 14, 1024, 2048, 1, 2, 0),
    Conv("resnet50", "res5_1x1_2048_512", 1, 7, 7, 2048, 512, 1, 1, 0),
    Conv("resnet50", "res5_3x3_512", 1, 7, 7, 512, 512, 3, 1, 1),

    // VGG-16: every 3x3 s1 p1 layer with a distinct shape.
    Conv("vgg16", "conv1_1", 1, 224, 224, 3, 64, 3, 1, 1),
    Conv("vgg16", "conv1_2", 1, 224, 224, 64, 64, 3, 1, 1),
    Conv("vgg16", "conv2_1", 1, 112, 112, 64, 128, 3, 1, 1),
    Conv("vgg16", "conv2_2", 1, 112, 112, 128, 128, 3, 1, 1),
    Conv("vgg16", "conv3_1", 1, 56, 56, 128, 256, 3, 1, 1),
    Conv("vgg16", "conv3_2", 1, 56, 56, 256, 256, 3, 1, 1),
    Conv("vgg16", "conv4_1", 1, 28, 28, 256, 512, 3, 1, 1),
    Conv("vgg16", "conv4_2", 1, 28, 28, 512, 512, 3, 1, 1),
    Conv("vgg16", "conv5_1", 1, 14, 14, 512, 512, 3, 1, 1),

    // MobileNet v1: the stem, then each distinct depthwise 3x3 and the 1x1 pointwise after it.
    Conv("mobilenet", "conv1_3x3s2", 1, 224, 224, 3, 32, 3, 2, 1),
    Depthwise("dw112_32", 1, 112, 32, 1),
    Conv("mobilenet", "pw112_32_64", 1, 112, 112, 32, 64, 1, 1, 0),
    Depthwise("dw112s2_64", 1, 112, 64, 2),
    Conv("mobilenet", "pw56_64_128", 1, 56, 56, 64, 128, 1, 1, 0),
    Depthwise("dw56_128", 1, 56, 128, 1),
    Conv("mobilenet", "pw56_128_128", 1, 56, 56, 128, 128, 1, 1, 0),
    Depthwise("dw56s2_128", 1, 56, 128, 2),
    Conv("mobilenet", "pw28_128_256", 1, 28, 28, 128, 256, 1, 1, 0),
    Depthwise("dw28_256", 1, 28, 256, 1),
    Conv("mobilenet", "pw28_256_256", 1, 28, 28, 256, 256, 1, 1, 0),
    Depthwise("dw28s2_256", 1, 28, 256, 2),
    Conv("mobilenet", "pw14_256_512", 1, 14, 14, 256, 512, 1, 1, 0),
    Depthwise("dw14_512", 1, 14, 512, 1),
    Conv("mobilenet", "pw14_512_512", 1, 14, 14, 512, 512, 1, 1, 0),
    Depthwise("dw14s2_512", 1, 14, 512, 2),
    Conv("mobilenet", "pw7_512_1024", 1, 7, 7, 512, 1024, 1, 1, 0),
    Depthwise("dw7_1024", 1, 7, 1024, 1),
    Conv("mobilenet", "pw7_1024_1024", 1, 7, 7, 1024, 1024, 1, 1, 0),

    // Odd channel counts and sizes: tails around the vector width (8 and 16 floats), primes.
    Conv("odd", "c13_29_k3_56", 1, 56, 56, 13, 29, 3, 1, 1),
    Conv("odd", "c3_17_k3_56", 1, 56, 56, 3, 17, 3, 1, 1),
    Conv("odd", "c17_31_k3_28", 2, 28, 28, 17, 31, 3, 1, 1),
    Conv("odd", "c1_1_k3_64", 1, 64, 64, 1, 1, 3, 1, 1),
    Conv("odd", "c15_16_k1_31x29", 2, 31, 29, 15, 16, 1, 1, 0),
    Conv("odd", "c31_33_k1_28", 1, 28, 28, 31, 33, 1, 1, 0),
    Conv("odd", "c61_67_k3s2_27", 1, 27, 27, 61, 67, 3, 2, 1),
    Conv("odd", "c7_5_k5_33x35", 2, 33, 35, 7, 5, 5, 1, 2),
    Conv("odd", "c17_31_k3d2_28", 1, 28, 28, 17, 31, 3, 1, 2, 1, 2),
    Conv("odd", "c34_34_k3g2_28", 1, 28, 28, 34, 34, 3, 1, 1, 2),
    Conv("odd", "dw_c23_k5_29", 1, 29, 29, 23, 23, 5, 1, 2, 23),
    // TensorFlow's SAME padding at stride 2: nothing on the top/left, one on the bottom/right.
    WithPads(Conv("odd", "c13_29_k3s2_same_56", 1, 56, 56, 13, 29, 3, 2, 0), Pads{0, 1, 0, 1}),

    // Group convolutions. ResNeXt-50 32x4d (Xie et al. 2017, "Aggregated Residual
    // Transformations", Table 1; stride in the 3x3 as torchvision's resnext50_32x4d): the 3x3 of
    // conv2..conv5 with 32 groups, the first block of conv3..conv5 at stride 2.
    Grouped("rx50_c2_128g32", 56, 128, 32, 1),
    Grouped("rx50_c3_256g32s2", 56, 256, 32, 2),
    Grouped("rx50_c3_256g32", 28, 256, 32, 1),
    Grouped("rx50_c4_512g32s2", 28, 512, 32, 2),
    Grouped("rx50_c4_512g32", 14, 512, 32, 1),
    Grouped("rx50_c5_1024g32s2", 14, 1024, 32, 2),
    Grouped("rx50_c5_1024g32", 7, 1024, 32, 1),
    // RegNetY-400MF (Radosavovic et al. 2020, "Designing Network Design Spaces"; pycls
    // RegNetY-400MF: widths 48, 104, 208, 440, group width 8, bottleneck ratio 1): each stage's
    // 3x3 at stride 2 (first block) and stride 1 (the others; stage 1 has one block).
    Grouped("regnety400_s1_48g6s2", 112, 48, 6, 2),
    Grouped("regnety400_s2_104g13s2", 56, 104, 13, 2),
    Grouped("regnety400_s2_104g13", 28, 104, 13, 1),
    Grouped("regnety400_s3_208g26s2", 28, 208, 26, 2),
    Grouped("regnety400_s3_208g26", 14, 208, 26, 1),
    Grouped("regnety400_s4_440g55s2", 14, 440, 55, 2),
    Grouped("regnety400_s4_440g55", 7, 440, 55, 1),

    // Stems: the first layer, on 1 or 3 input channels, at batch 1 (inference) and 8 (a batch).
    // MobileNetV3-Large (Howard et al. 2019, Table 1): 3x3/2, 3 -> 16. EfficientNet-B0 (Tan & Le
    // 2019, Table 1) and MobileNetV2 (Sandler et al. 2018, Table 2): 3x3/2, 3 -> 32. ResNet
    // (He et al. 2016, Table 1): 7x7/2, 3 -> 64. ConvNeXt-T (Liu et al. 2022, §2.2 "patchify"):
    // 4x4/4, 3 -> 96. ViT-B/16 (Dosovitskiy et al. 2021, patch embedding as a convolution):
    // 16x16/16, 3 -> 768. U-Net (Ronneberger et al. 2015, Fig. 1): 3x3, 1 -> 64, unpadded, on a
    // 572x572 grey-scale tile.
    Conv("stems", "mnv3_3x3s2_3_16", 1, 224, 224, 3, 16, 3, 2, 1),
    Conv("stems", "effnet_3x3s2_3_32", 1, 224, 224, 3, 32, 3, 2, 1),
    Conv("stems", "effnet_3x3s2_3_32_n8", 8, 224, 224, 3, 32, 3, 2, 1),
    Conv("stems", "resnet_7x7s2_3_64_n8", 8, 224, 224, 3, 64, 7, 2, 3),
    Conv("stems", "convnext_4x4s4_3_96", 1, 224, 224, 3, 96, 4, 4, 0),
    Conv("stems", "convnext_4x4s4_3_96_n8", 8, 224, 224, 3, 96, 4, 4, 0),
    Conv("stems", "vit_16x16s16_3_768", 1, 224, 224, 3, 768, 16, 16, 0),
    Conv("stems", "vit_16x16s16_3_768_n8", 8, 224, 224, 3, 768, 16, 16, 0),
    Conv("stems", "unet_3x3_1_64", 1, 572, 572, 1, 64, 3, 1, 0),

    // Large-kernel depthwise (padding k / 2). ConvNeXt-T (Liu et al. 2022, Fig. 4): 7x7 in every
    // block of the four stages. EfficientNet-B0 (Tan & Le 2019, Table 1): the 5x5 MBConv6 of
    // stages 3, 5, 6 on the expanded channels, first block (stride 2 where the stage downsamples)
    // and repeated block. MobileNetV3-Large (Howard et al. 2019, Table 1): the 5x5 bnecks. 7x7 at
    // stride 2 and at 112x112: no model above has it; ConvNeXt's channels at the stride-2 stage
    // transitions and MobileNet's first stage stand in for the downsampling large-kernel blocks
    // of e.g. MixNet and RepLKNet.
    DepthwiseK("convnext_dw7_56_96", 56, 96, 7, 1),
    DepthwiseK("convnext_dw7_28_192", 28, 192, 7, 1),
    DepthwiseK("convnext_dw7_14_384", 14, 384, 7, 1),
    DepthwiseK("convnext_dw7_7_768", 7, 768, 7, 1),
    DepthwiseK("dw7_112_32", 112, 32, 7, 1),
    DepthwiseK("dw7s2_112_96", 112, 96, 7, 2),
    DepthwiseK("dw7s2_56_192", 56, 192, 7, 2),
    DepthwiseK("dw7s2_28_384", 28, 384, 7, 2),
    DepthwiseK("dw7s2_14_768", 14, 768, 7, 2),
    DepthwiseK("effnet_dw5s2_56_144", 56, 144, 5, 2),
    DepthwiseK("effnet_dw5_28_240", 28, 240, 5, 1),
    DepthwiseK("effnet_dw5_14_480", 14, 480, 5, 1),
    DepthwiseK("effnet_dw5_14_672", 14, 672, 5, 1),
    DepthwiseK("effnet_dw5s2_14_672", 14, 672, 5, 2),
    DepthwiseK("effnet_dw5_7_1152", 7, 1152, 5, 1),
    DepthwiseK("mnv3_dw5s2_56_72", 56, 72, 5, 2),
    DepthwiseK("mnv3_dw5_28_120", 28, 120, 5, 1),
    DepthwiseK("mnv3_dw5_7_960", 7, 960, 5, 1),
    DepthwiseK("dw5_112_32", 112, 32, 5, 1),

    // Dilated (atrous) layers. DeepLabv3 (Chen et al. 2017, "Rethinking Atrous Convolution";
    // torchvision's deeplabv3_resnet50 at 520x520, output stride 8: 65x65): the 3x3 of ResNet-50's
    // layer3 (dilation 2) and layer4 (dilation 4); its ASPP at output stride 16 (33x33, rates 6, 12
    // and 18, 2048 -> 256). MobileNetV3-Large's last stage dilated by 2 at output stride 16
    // (torchvision's deeplabv3_mobilenet_v3_large and lraspp backbone): its 5x5 depthwise layers.
    Conv("dilated", "deeplab_r50_l3_256d2_65", 1, 65, 65, 256, 256, 3, 1, 2, 1, 2),
    Conv("dilated", "deeplab_r50_l4_512d4_65", 1, 65, 65, 512, 512, 3, 1, 4, 1, 4),
    Conv("dilated", "deeplab_aspp_2048r6_33", 1, 33, 33, 2048, 256, 3, 1, 6, 1, 6),
    Conv("dilated", "deeplab_aspp_2048r12_33", 1, 33, 33, 2048, 256, 3, 1, 12, 1, 12),
    Conv("dilated", "deeplab_aspp_2048r18_33", 1, 33, 33, 2048, 256, 3, 1, 18, 1, 18),
    Conv("dilated", "mnv3_dw5d2_672_33", 1, 33, 33, 672, 672, 5, 1, 4, 672, 2),
    Conv("dilated", "mnv3_dw5d2_960_33", 1, 33, 33, 960, 960, 5, 1, 4, 960, 2),

    // Narrow pointwise layers. MobileNetV3-Large (Howard et al. 2019, Table 1): the expand and
    // project 1x1s of the first bnecks. ShuffleNetV2 (Ma et al. 2018, Table 5): the branch 1x1s
    // of stage 2 at 1.0x (58 channels) and 0.5x (24), stage 3 at 0.5x (48).
    Pointwise("mnv3_pw112_16_16", 112, 16, 16),
    Pointwise("mnv3_pw112_16_64", 112, 16, 64),
    Pointwise("mnv3_pw56_64_24", 56, 64, 24),
    Pointwise("mnv3_pw56_24_72", 56, 24, 72),
    Pointwise("mnv3_pw56_72_24", 56, 72, 24),
    Pointwise("mnv3_pw28_72_40", 28, 72, 40),
    Pointwise("mnv3_pw28_40_120", 28, 40, 120),
    Pointwise("shufflev2_pw56_24_58", 56, 24, 58),
    Pointwise("shufflev2_pw28_58_58", 28, 58, 58),
    Pointwise("shufflev2x05_pw28_24_24", 28, 24, 24),
    Pointwise("shufflev2x05_pw14_48_48", 14, 48, 48),

    // Downsampling convolutions (stride 2) of small and mid channel counts, a class the sets above
    // hold few of (auto's table learns their backward passes from these): ResNet-18 (He et al.
    // 2016, Table 1: the first 3x3 of conv3_x to conv5_x and the 1x1 projection of conv3_x, at
    // 224x224); YOLOv5s v6 at 320x320 (its 3x3/2 Convs of the backbone's second and third
    // stages); HRNet-W32's stem second 3x3/2 (256x192 pose input); SSD300's extra feature layers
    // (Liu et al. 2016: 3x3/2 at 10x10 and 5x5, pad 1); the pix2pix / PatchGAN encoder's 4x4/2
    // pad 1 (Isola et al. 2017: C128, C256, C512 at 256x256).
    Conv("strided", "resnet18_c3_3x3s2_64_128", 1, 56, 56, 64, 128, 3, 2, 1),
    Conv("strided", "resnet18_c4_3x3s2_128_256", 1, 28, 28, 128, 256, 3, 2, 1),
    Conv("strided", "resnet18_c5_3x3s2_256_512", 1, 14, 14, 256, 512, 3, 2, 1),
    Conv("strided", "resnet18_c3_1x1s2_64_128", 1, 56, 56, 64, 128, 1, 2, 0),
    Conv("strided", "yolov5s_3x3s2_32_64_160", 1, 160, 160, 32, 64, 3, 2, 1),
    Conv("strided", "yolov5s_3x3s2_64_128_80", 1, 80, 80, 64, 128, 3, 2, 1),
    Conv("strided", "hrnet_stem2_3x3s2_64_128x96", 1, 128, 96, 64, 64, 3, 2, 1),
    Conv("strided", "ssd_extra_3x3s2_256_512_10", 1, 10, 10, 256, 512, 3, 2, 1),
    Conv("strided", "ssd_extra_3x3s2_128_256_5", 1, 5, 5, 128, 256, 3, 2, 1),
    Conv("strided", "pix2pix_c128_4x4s2_64_128", 1, 128, 128, 64, 128, 4, 2, 1),
    Conv("strided", "pix2pix_c256_4x4s2_128_256", 1, 64, 64, 128, 256, 4, 2, 1),
    Conv("strided", "pix2pix_c512_4x4s2_256_512", 1, 32, 32, 256, 512, 4, 2, 1),
    // Inception-v3 (Szegedy et al. 2016) at 299x299: Mixed_6b-6e's 7x7 branches factorized into
    // 1x7 and 7x1 at 17x17 (128, 160 and 192 channels), Mixed_7b's 1x3 and 3x1 at 8x8.
    Factorized("inception_6b_1x7_128_128", 17, 17, 128, 128, 1, 7),
    Factorized("inception_6b_7x1_128_192", 17, 17, 128, 192, 7, 1),
    Factorized("inception_6c_1x7_160_160", 17, 17, 160, 160, 1, 7),
    Factorized("inception_6c_7x1_160_160", 17, 17, 160, 160, 7, 1),
    Factorized("inception_6e_1x7_192_192", 17, 17, 192, 192, 1, 7),
    Factorized("inception_6e_7x1_192_192", 17, 17, 192, 192, 7, 1),
    Factorized("inception_7b_1x3_384_384", 8, 8, 384, 384, 1, 3),
    Factorized("inception_7b_3x1_384_384", 8, 8, 384, 384, 3, 1),
    // ERFNet (Romera et al. 2018) at 256x512: non-bottleneck-1D 3x1 and 1x3 at 64x128 (64
    // channels) and dilated by 4 at 32x64 (128 channels).
    Factorized("erfnet_3x1_64", 64, 128, 64, 64, 3, 1),
    Factorized("erfnet_1x3_64", 64, 128, 64, 64, 1, 3),
    Factorized("erfnet_3x1_d4_128", 32, 64, 128, 128, 3, 1, 4),
    Factorized("erfnet_1x3_d4_128", 32, 64, 128, 128, 1, 3, 4),
};

inline constexpr TransposeShape kTransposeShapes[] = {
    // UNet (Ronneberger et al. 2015) at 256x256, decoder up-convolutions 2x2 s2 halving the
    // channels (as milesial/Pytorch-UNet's Up: ConvTranspose2d(c, c // 2, 2, stride=2)).
    Transpose("unet256_up1_k2s2_1024", 1, 16, 16, 1024, 512, 2, 2, 0),
    Transpose("unet256_up2_k2s2_512", 1, 32, 32, 512, 256, 2, 2, 0),
    Transpose("unet256_up3_k2s2_256", 1, 64, 64, 256, 128, 2, 2, 0),
    Transpose("unet256_up4_k2s2_128", 1, 128, 128, 128, 64, 2, 2, 0),
    // DBNet (Liao et al. 2020) at 640x640: the probability head's first ConvTranspose2d(64, 64,
    // 2, 2) on the 1/4-scale FPN neck output.
    Transpose("dbnet640_head_k2s2_64", 1, 160, 160, 64, 64, 2, 2, 0),
    // DCGAN generator (Radford et al. 2015, the PyTorch example with ngf = 64), batch 8:
    // ConvTranspose2d(c, c / 2, 4, 2, 1) from 4x4 to 32x32.
    Transpose("dcgan_g2_k4s2p1_512", 8, 4, 4, 512, 256, 4, 2, 1),
    Transpose("dcgan_g3_k4s2p1_256", 8, 8, 8, 256, 128, 4, 2, 1),
    Transpose("dcgan_g4_k4s2p1_128", 8, 16, 16, 128, 64, 4, 2, 1),
    // Simple Baselines (Xiao et al. 2018) / CenterNet's ResNet head at 256x192: the second and
    // third ConvTranspose2d(256, 256, 4, 2, 1).
    Transpose("simplebaselines_k4s2p1_256_16x12", 1, 16, 12, 256, 256, 4, 2, 1),
    Transpose("simplebaselines_k4s2p1_256_32x24", 1, 32, 24, 256, 256, 4, 2, 1),
    // LinkNet (Chaurasia and Culurciello 2017) at 512x512: the decoders' full convolution 3x3 s2
    // p1 output_padding 1 on m / 4 channels (decoder 4: m = 512; decoder 3: m = 256).
    Transpose("linknet512_dec4_k3s2p1op1_128", 1, 16, 16, 128, 128, 3, 2, 1, 1),
    Transpose("linknet512_dec3_k3s2p1op1_64", 1, 32, 32, 64, 64, 3, 2, 1, 1),
    // DeconvNet (Noh et al. 2015): the 3x3 s1 p1 deconvolutions mirroring VGG-16's conv5 and
    // conv3 blocks.
    Transpose("deconvnet_k3s1p1_512_14", 1, 14, 14, 512, 512, 3, 1, 1),
    Transpose("deconvnet_k3s1p1_256_56", 1, 56, 56, 256, 256, 3, 1, 1),
};

inline constexpr PoolShape kPoolShapes[] = {
    // The assignment's pool_forward and pool_backward examples.
    Pool("seed_4x4x3_k3s2", 2, 4, 4, 3, 3, 2, 0),
    Pool("seed_5x5x3_k3s1", 2, 5, 5, 3, 3, 1, 0),
    Pool("seed_5x5x3_k3s2", 2, 5, 5, 3, 3, 2, 0),
    Pool("seed_5x3x2_k2s1", 5, 5, 3, 2, 2, 1, 0),
    // Network pools: ResNet-50's stem max pool (training and inference batch), the global average
    // pools at the end of ResNet-50 and MobileNet, VGG-16's first 2x2 pool.
    Pool("resnet50_maxpool", 32, 112, 112, 64, 3, 2, 1),
    Pool("resnet50_maxpool", 1, 112, 112, 64, 3, 2, 1),
    GlobalPool("resnet50_global_7x7x2048", 32, 7, 2048),
    GlobalPool("mobilenet_global_7x7x1024", 1, 7, 1024),
    Pool("vgg16_pool1_k2s2", 1, 224, 224, 64, 2, 2, 0),
    // YOLO's spatial pyramid pooling at stride 1: YOLOv3-SPP's 5x5 over 19x19x512 at 608x608 (its
    // 9x9 and 13x13 too are max pools, but every set shape also runs as an average pool in the
    // equivalence grid, whose integer data cannot keep 81- and 169-element means exact) and
    // YOLOv5s's SPPF at 640x640, 5x5 over 20x20x256.
    Pool("yolov3_spp_k5_19x19x512", 1, 19, 19, 512, 5, 1, 2),
    Pool("yolov5s_sppf_k5_20x20x256", 1, 20, 20, 256, 5, 1, 2),
    // Small, in cache: padding, ceil_mode and count_include_pad at odd sizes and channel counts.
    Pool("small_18x18x16_k3s2p1_ceil", 4, 18, 18, 16, 3, 2, 1, true),
    Pool("small_16x16x7_k3s2_ceil", 4, 16, 16, 7, 3, 2, 0, true),
    Pool("small_13x11x33_k3s1p1_incl", 2, 13, 11, 33, 3, 1, 1, false, true),
    Pool("small_8x8x64_k2s2", 8, 8, 8, 64, 2, 2, 0),
    Pool("small_32x32x5_k5s3p2_ceil_incl", 1, 32, 32, 5, 5, 3, 2, true, true),
};

}  // namespace internal

// Every convolution shape, grouped by set in the order above.
inline std::span<const ConvShape> ConvShapes() { return internal::kConvShapes; }

// Every transposed-convolution shape.
inline std::span<const TransposeShape> TransposeShapes() { return internal::kTransposeShapes; }

// Every pooling shape.
inline std::span<const PoolShape> PoolShapes() { return internal::kPoolShapes; }

}  // namespace convkit::bench
