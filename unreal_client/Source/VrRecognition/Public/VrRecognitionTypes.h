// What the component hands to Blueprints: a result (labels, the pose and gaze the frame was captured
// with, latency), how a connection ended, and the delegates that carry them.
#pragma once

#include "CoreMinimal.h"

#include "VrRecognitionTypes.generated.h"

/** One label of a result, best first. */
USTRUCT(BlueprintType)
struct VRRECOGNITION_API FVrPrediction
{
	GENERATED_BODY()

	UPROPERTY(BlueprintReadOnly, Category = "VR Recognition")
	FString Label;

	/** Index into the model's class list (GetClasses). */
	UPROPERTY(BlueprintReadOnly, Category = "VR Recognition")
	int32 Index = 0;

	/** Softmax probability in [0, 1] (smoothed when smoothing is on). */
	UPROPERTY(BlueprintReadOnly, Category = "VR Recognition")
	float Score = 0.f;
};

/** The server's answer to one captured frame (docs/protocol.md 4.2). */
USTRUCT(BlueprintType)
struct VRRECOGNITION_API FVrRecognitionResult
{
	GENERATED_BODY()

	UPROPERTY(BlueprintReadOnly, Category = "VR Recognition")
	int64 FrameId = 0;

	/** "ok" (TopK holds the answer), "dropped_stale" or "late" (normal under load, no labels), "error". */
	UPROPERTY(BlueprintReadOnly, Category = "VR Recognition")
	FString Status;

	UPROPERTY(BlueprintReadOnly, Category = "VR Recognition")
	TArray<FVrPrediction> TopK;

	/** Where the frame was captured (the pose sent with it, echoed by the server), in world space. */
	UPROPERTY(BlueprintReadOnly, Category = "VR Recognition")
	bool bHasPose = false;

	UPROPERTY(BlueprintReadOnly, Category = "VR Recognition")
	FVector CaptureLocation = FVector::ZeroVector;

	UPROPERTY(BlueprintReadOnly, Category = "VR Recognition")
	FQuat CaptureRotation = FQuat::Identity;

	/** The gaze point sent with the frame, normalised to [0, 1] from the image's top-left. */
	UPROPERTY(BlueprintReadOnly, Category = "VR Recognition")
	bool bHasGaze = false;

	UPROPERTY(BlueprintReadOnly, Category = "VR Recognition")
	FVector2D Gaze = FVector2D::ZeroVector;

	/** Capture to answer, on this device's clock: what the user experiences. */
	UPROPERTY(BlueprintReadOnly, Category = "VR Recognition")
	float LatencyMs = 0.f;

	/** The server's own time for the frame (timings_ms.total), or -1. */
	UPROPERTY(BlueprintReadOnly, Category = "VR Recognition")
	float ServerMs = -1.f;

	UPROPERTY(BlueprintReadOnly, Category = "VR Recognition")
	FString ModelVersion;

	/** With Status "error": the error code (docs/protocol.md 5.1) and message. */
	UPROPERTY(BlueprintReadOnly, Category = "VR Recognition")
	FString ErrorCode;

	UPROPERTY(BlueprintReadOnly, Category = "VR Recognition")
	FString ErrorMessage;
};

/** How a connection ended and what the component does next. */
USTRUCT(BlueprintType)
struct VRRECOGNITION_API FVrDisconnectInfo
{
	GENERATED_BODY()

	/** The server's close code (docs/protocol.md 5.2), 0 when the connection ended without one. */
	UPROPERTY(BlueprintReadOnly, Category = "VR Recognition")
	int32 CloseCode = 0;

	/** The close reason, an error code such as "too_many_streams". */
	UPROPERTY(BlueprintReadOnly, Category = "VR Recognition")
	FString CloseReason;

	UPROPERTY(BlueprintReadOnly, Category = "VR Recognition")
	FString Description;

	UPROPERTY(BlueprintReadOnly, Category = "VR Recognition")
	bool bWasConnected = false;

	UPROPERTY(BlueprintReadOnly, Category = "VR Recognition")
	bool bWillReconnect = false;

	UPROPERTY(BlueprintReadOnly, Category = "VR Recognition")
	float ReconnectDelaySeconds = 0.f;
};

DECLARE_DYNAMIC_MULTICAST_DELEGATE_OneParam(FOnVrRecognitionResult, const FVrRecognitionResult&, Result);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_OneParam(FOnVrRecognitionConnected, const TArray<FString>&, Classes);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_OneParam(FOnVrRecognitionDisconnected, const FVrDisconnectInfo&, Info);
DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(FOnVrRecognitionError, const FString&, Code, const FString&, Message);
